//! A backend-generic value's concrete type, told at run time: how the GPU runners' own
//! operations (quill-cublas, quill-gpu-kernels) take the tensors of their backend while the
//! model stays generic over burn's `Backend`.

use std::any::{Any, TypeId};

/// Whether `A` is `T`.
pub fn is<A: 'static, T: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<T>()
}

/// `value` as the type it is (`is::<A, T>()` holds), for code generic over the backend.
pub fn convert<A: 'static, T: 'static>(value: A) -> T {
    let boxed: Box<dyn Any> = Box::new(value);
    *boxed
        .downcast::<T>()
        .unwrap_or_else(|_| unreachable!("checked with `is`"))
}
