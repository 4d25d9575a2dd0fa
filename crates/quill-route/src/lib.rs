//! A backend-generic value's concrete type, told at run time: how the kernel crates
//! (quill-kernels on burn-flex, quill-gpu-kernels and quill-cublas on the CubeCL backends)
//! take the tensors of their backend while the model stays generic over burn's `Backend`.
//!
//! burn's backend-extension idiom (a trait with the fused operations, implemented per backend)
//! would put that trait's bound on every generic function of the workspace, and it chooses by
//! type, so one process could not hold two choices for one backend; quill-backend says more.
//! A `TypeId` comparison is resolved per monomorphization and costs nothing at run time.

use std::any::{Any, TypeId};

/// Whether `A` is `T`.
pub fn is<A: 'static, T: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<T>()
}

/// `value` as the type it is (`is::<A, T>()` holds).
///
/// # Panics
/// When `A` is not `T`: a caller checks [`is`] first.
pub fn convert<A: 'static, T: 'static>(value: A) -> T {
    match cast(value) {
        Ok(value) => value,
        Err(_) => unreachable!("checked with `is`"),
    }
}

/// `value` as a `T` when it is one, else `value` back.
pub fn cast<A: 'static, T: 'static>(value: A) -> Result<T, A> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<T>>() {
        Some(target) => Ok(target.take().expect("filled above")),
        None => Err(slot.expect("untouched")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_to_the_same_type_only() {
        assert!(is::<u32, u32>() && !is::<u32, i32>());
        assert_eq!(cast::<u32, u32>(7), Ok(7));
        assert_eq!(cast::<u32, i32>(7), Err(7));
        assert_eq!(convert::<String, String>("x".into()), "x");
    }
}
