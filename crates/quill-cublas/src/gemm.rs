//! One cuBLAS call for a batch of products of burn-cuda tensors, enqueued on the CUDA stream
//! that burn's own kernels for these tensors run on.
//!
//! Ordering is the stream's: cubecl resolves each buffer for the stream of the thread asking
//! (making that stream wait for another stream's writes where needed, as for a kernel), and
//! the product goes on that same stream. So it runs after every kernel enqueued before it and
//! before every kernel enqueued after it, and the memory pool, which reuses freed memory only
//! within the stream, cannot hand its inputs or output to another operation while it runs.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::c_void;
use std::sync::Mutex;

use burn::tensor::DType;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl_cuda::CudaRuntime;
use cudarc::cublas::{result as blas, sys};
use cudarc::driver::{result as driver, sys as cuda};

use crate::plan::{self, Layout};

/// A burn-cuda tensor as burn's CUDA kernels see it (buffer, shape, strides, dtype).
pub type CudaTensor = CubeTensor<CudaRuntime>;

/// `tensor` (of dimensions `dims`) and its layout, copied into row-major order when cuBLAS
/// cannot read it in place.
fn operand(tensor: CudaTensor, dims: &[usize]) -> (CudaTensor, Layout) {
    match plan::layout(dims, tensor.meta.strides()) {
        Some(layout) => (tensor, layout),
        None => (into_contiguous(tensor), plan::contiguous(dims)),
    }
}

/// `op(a) · op(b)` for each matrix of the batch, where `op` transposes the last two dimensions
/// when its flag is set. `a: [..batch, m, k]` (or `[..batch, k, m]` with `transpose_a`), `b`
/// likewise `[..batch, k, n]`, with the same batch; the output is a new contiguous
/// `[..batch, m, n]` of their dtype (f32, bf16 or f16). f32 products use TF32 tensor cores with
/// f32 accumulation, as burn's own CUDA products do; half-precision ones accumulate in f32.
/// `Err` says why cuBLAS did not take the call: no product was enqueued then (a copy that made
/// an operand contiguous may have been).
pub fn gemm(
    a: CudaTensor,
    b: CudaTensor,
    transpose_a: bool,
    transpose_b: bool,
) -> Result<CudaTensor, String> {
    let dtype = a.dtype;
    if dtype != b.dtype {
        return Err(format!("operands of dtypes {dtype:?} and {:?}", b.dtype));
    }
    let (data_type, compute_type) =
        cuda_types(dtype).ok_or_else(|| format!("no cuBLAS product for {dtype:?}"))?;
    let (a_dims, b_dims) = (a.meta.shape().to_vec(), b.meta.shape().to_vec());
    let ((a, a_layout), (b, b_layout)) = (operand(a, &a_dims), operand(b, &b_dims));
    let (call, out_dims) = plan::call(
        &a_dims,
        a_layout,
        transpose_a,
        &b_dims,
        b_layout,
        transpose_b,
    );

    // cuBLAS takes 32-bit sizes and leading dimensions and 64-bit batch strides: converted
    // here, so that a call out of its range is an error of this thread, not a panic of
    // cubecl's runner thread.
    let int = |value: usize| {
        i32::try_from(value).map_err(|_| format!("{value} is over cuBLAS's 32-bit sizes"))
    };
    let long = |value: usize| {
        i64::try_from(value).map_err(|_| format!("{value} is over cuBLAS's 64-bit strides"))
    };
    let (m, n, k, batch) = (int(call.m)?, int(call.n)?, int(call.k)?, int(call.batch)?);
    let (ld_first, ld_second, ldc) = (int(call.ld_first)?, int(call.ld_second)?, int(call.ldc)?);
    let (stride_first, stride_second, stride_c) = (
        long(call.stride_first)?,
        long(call.stride_second)?,
        long(call.stride_c)?,
    );

    let client = a.client.clone();
    let device = a.device.clone();
    let elements = out_dims.iter().product::<usize>();
    let out_handle = client.empty(elements * dtype.size());
    let out = CudaTensor::new_contiguous(
        client.clone(),
        device.clone(),
        out_dims.into(),
        out_handle,
        dtype,
    );
    if elements == 0 {
        return Ok(out);
    }

    let index = device.index;
    let enqueue = || -> Result<(), String> {
        // Resolved for the stream of the operation (cubecl's runner thread runs this closure
        // under its stream id); held until the product is enqueued.
        let resource = |tensor: &CudaTensor| {
            client
                .get_resource(tensor.handle.clone())
                .map_err(|error| format!("a tensor's CUDA buffer: {error:?}"))
        };
        let (a_buffer, b_buffer, out_buffer) = (resource(&a)?, resource(&b)?, resource(&out)?);
        let stream = out_buffer.resource().stream;
        let (a_ptr, b_ptr, out_ptr) = (
            a_buffer.resource().ptr,
            b_buffer.resource().ptr,
            out_buffer.resource().ptr,
        );
        let op = |transposed: bool| match transposed {
            false => sys::cublasOperation_t::CUBLAS_OP_N,
            true => sys::cublasOperation_t::CUBLAS_OP_T,
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        with_handle(index, stream, |handle| {
            // SAFETY: the three pointers are live device buffers of cubecl's pool for this
            // stream (held by the `ManagedResource`s until after this call), as large as the
            // shapes, leading dimensions and batch strides of `call` imply (plan.rs); the
            // scalars are host f32s, as the f32 compute types require.
            unsafe {
                blas::gemm_strided_batched_ex(
                    handle,
                    op(call.transpose_first),
                    op(call.transpose_second),
                    m,
                    n,
                    k,
                    (&alpha as *const f32).cast::<c_void>(),
                    b_ptr as *const c_void,
                    data_type,
                    ld_first,
                    stride_first,
                    a_ptr as *const c_void,
                    data_type,
                    ld_second,
                    stride_second,
                    (&beta as *const f32).cast::<c_void>(),
                    out_ptr as *mut c_void,
                    data_type,
                    ldc,
                    stride_c,
                    batch,
                    compute_type,
                    sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                )
            }
        })
    };
    // On cubecl's runner thread, in one round trip: the three buffers resolved there inline,
    // and cuBLAS enqueued by the thread that launches burn's kernels, between them. The
    // fusion thread waits for that round trip (once per product, ~110 per training step):
    // the cost of resolving the buffers, which cubecl offers only as a blocking call.
    client
        .exclusive(enqueue)
        .map_err(|error| format!("{error:?}"))
        .and_then(|result| result)
        .map_err(|error| format!("cublasGemmStridedBatchedEx: {error}"))?;
    Ok(out)
}

/// cuBLAS's element and compute types for a dtype it multiplies.
fn cuda_types(dtype: DType) -> Option<(sys::cudaDataType, sys::cublasComputeType_t)> {
    use sys::cublasComputeType_t::{CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32};
    use sys::cudaDataType::{CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F};
    match dtype {
        DType::F32 => Some((CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32)),
        DType::BF16 => Some((CUDA_R_16BF, CUBLAS_COMPUTE_32F)),
        DType::F16 => Some((CUDA_R_16F, CUBLAS_COMPUTE_32F)),
        _ => None,
    }
}

/// Whether cuBLAS takes this dtype (the route checks before recording an operation).
pub fn supports(dtype: DType) -> bool {
    cuda_types(dtype).is_some()
}

/// A cuBLAS handle on one device, created in its primary context (the one cubecl uses).
struct Device {
    handle: sys::cublasHandle_t,
}

// SAFETY: the handle is used only under `DEVICES`' lock, one thread at a time.
unsafe impl Send for Device {}

static DEVICES: Mutex<Option<HashMap<usize, Device>>> = Mutex::new(None);

/// Runs `call` with device `index`'s cuBLAS handle set to `stream`, creating the handle the
/// first time. It runs on cubecl's runner thread, right after `get_resource`, which made the
/// device's context current there.
fn with_handle<T>(
    index: usize,
    stream: cuda::CUstream,
    call: impl FnOnce(sys::cublasHandle_t) -> Result<T, blas::CublasError>,
) -> Result<T, String> {
    let mut devices = DEVICES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let devices = devices.get_or_insert_with(HashMap::new);
    let device = match devices.entry(index) {
        Entry::Occupied(entry) => entry.into_mut(),
        Entry::Vacant(entry) => entry.insert(open(index)?),
    };
    // SAFETY: `stream` is one of cubecl's streams in the context the handle was created in.
    unsafe {
        blas::set_stream(device.handle, stream as sys::cudaStream_t).map_err(|e| e.to_string())?;
    }
    call(device.handle).map_err(|e| e.to_string())
}

/// Device `index`'s primary context made current, and a cuBLAS handle in it.
fn open(index: usize) -> Result<Device, String> {
    let ordinal = i32::try_from(index).map_err(|e| e.to_string())?;
    // SAFETY: plain driver calls; cubecl has initialised the driver before any tensor exists.
    unsafe {
        let device = driver::device::get(ordinal).map_err(|e| e.to_string())?;
        let context = driver::primary_ctx::retain(device).map_err(|e| e.to_string())?;
        driver::ctx::set_current(context).map_err(|e| e.to_string())?;
        let handle = blas::create_handle().map_err(|e| e.to_string())?;
        Ok(Device { handle })
    }
}

/// Whether the cuBLAS library can be loaded (it ships with the CUDA toolkit, beside NVRTC).
pub fn library_present() -> bool {
    // SAFETY: only tries to `dlopen` the library under its usual names.
    unsafe { sys::is_culib_present() }
}
