//! Matrices read in place from a tensor's buffer (any non-negative strides), and one product
//! `out = scale·a·b` on the calling thread with the `gemm` crate: its AVX-512 (or AVX2, NEON)
//! kernels, chosen at run time. The linear layers and the attention's per-head products use it.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

use burn_flex::FlexTensor;

/// A read-only `[rows, cols]` matrix inside a buffer: element `(i, j)` is
/// `data[offset + i·row_stride + j·col_stride]`.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    data: &'a [f32],
    offset: usize,
    pub rows: usize,
    pub cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// The `[rows, cols]` matrix of `data` from `offset`, rows `row_stride` apart.
    pub fn new(
        data: &'a [f32],
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Self {
        Self {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The matrix a rank-2 tensor is; `None` for negative strides (flipped views).
    pub fn of(tensor: &'a FlexTensor) -> Option<Self> {
        let layout = tensor.layout();
        let [rows, cols] = layout.shape().dims::<2>();
        let [row_stride, col_stride] = [layout.strides()[0], layout.strides()[1]];
        let matrix = Self {
            data: tensor.storage::<f32>(),
            offset: layout.start_offset(),
            rows,
            cols,
            row_stride: usize::try_from(row_stride).ok()?,
            col_stride: usize::try_from(col_stride).ok()?,
        };
        Some(matrix)
    }

    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows `start..start + count`.
    pub fn rows(self, start: usize, count: usize) -> Self {
        Self {
            offset: self.offset + start * self.row_stride,
            rows: count,
            ..self
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `tensor` itself when [`Matrix::of`] can read it in place, else a contiguous copy.
pub fn readable(tensor: &FlexTensor) -> FlexTensor {
    match Matrix::of(tensor) {
        Some(_) => tensor.clone(),
        None => tensor.to_contiguous(),
    }
}

/// `out = scale·a·b` on this thread, `out` a row-major `[a.rows, b.cols]` buffer; every
/// element is written.
pub fn product_into(out: &mut [MaybeUninit<f32>], a: Matrix, b: Matrix, scale: f32) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && out.len() == m * n && a.in_bounds() && b.in_bounds());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.iter_mut().for_each(|o| {
            o.write(0.0);
        });
        return;
    }
    // SAFETY: every element `gemm` reads lies in `a.data` or `b.data` (checked above) and
    // every element it writes lies in `out` (an exclusive borrow of exactly m·n elements),
    // which it writes without reading (`read_dst` false).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr().cast::<f32>(),
            1,
            n as isize,
            false,
            a.data.as_ptr().add(a.offset),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr().add(b.offset),
            b.col_stride as isize,
            b.row_stride as isize,
            0.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
