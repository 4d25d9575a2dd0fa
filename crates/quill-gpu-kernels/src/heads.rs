//! Attention's queries, keys and values split out of the QKV projection's output
//! `qkv: [batch, seq, 3·n_embd]` into three `[batch, head, seq, head_dim]` tensors, and the
//! three gradients written back into one `[batch, seq, 3·n_embd]` gradient: one kernel each way.
//!
//! burn splits with three slices and views (`chunk`, `reshape`, `swap_dims`), which a product
//! then copies into place; backward, each slice's gradient is a zero tensor of qkv's full shape
//! with its third written in, and autodiff adds the three: per layer, three fills, three
//! writes and two additions of `[batch, seq, 3·n_embd]`, and the copies back. Here every value
//! moves once each way: the merge reads the three gradients through their strides, so the
//! keys' gradient, which comes out of its product transposed, needs no copy first.

use burn::tensor::{DType, Shape};
use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use crate::launch::{elementwise_launch, empty, unit_index};

/// The sizes of a split: `qkv: [batch, seq, 3·heads·head_dim]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl Heads {
    /// The split of `qkv`'s `shape` into `heads` heads, or `None` when its last dimension is no
    /// multiple of `3·heads` or it holds more values than a 32-bit index reaches.
    pub fn of(shape: &[usize], heads: usize) -> Option<Self> {
        let [batch, seq, width] = *shape else {
            return None;
        };
        let fits = u32::try_from(batch * seq * width).is_ok();
        (heads > 0 && width > 0 && width % (3 * heads) == 0 && fits).then_some(Self {
            batch,
            seq,
            heads,
            head_dim: width / (3 * heads),
        })
    }

    /// `[batch, head, seq, head_dim]`.
    pub fn head_shape(self) -> Shape {
        Shape::new([self.batch, self.heads, self.seq, self.head_dim])
    }

    /// `[batch, seq, 3·n_embd]`.
    pub fn qkv_shape(self) -> Shape {
        Shape::new([self.batch, self.seq, 3 * self.heads * self.head_dim])
    }

    fn values(self) -> usize {
        self.batch * self.seq * 3 * self.heads * self.head_dim
    }
}

/// Where value `index` of `qkv` goes: which of q, k and v (0, 1, 2), and its batch, head,
/// position and channel there.
#[cube]
fn destination(index: u32, seq: u32, heads: u32, head_dim: u32) -> (u32, Coordinates) {
    let width = heads * head_dim;
    let row = index / (3 * width);
    let column = index % (3 * width);
    let channel = column % width;
    let at = Coordinates {
        batch: row / seq,
        head: channel / head_dim,
        position: row % seq,
        channel: channel % head_dim,
    };
    (column / width, at)
}

/// A value's place in a `[batch, head, seq, head_dim]` tensor.
#[derive(CubeType, Clone, Copy)]
struct Coordinates {
    batch: u32,
    head: u32,
    position: u32,
    channel: u32,
}

/// The index of `at` in a contiguous `[batch, heads, seq, head_dim]` tensor.
#[cube]
fn contiguous_index(at: Coordinates, seq: u32, heads: u32, head_dim: u32) -> usize {
    (((at.batch * heads + at.head) * seq + at.position) * head_dim + at.channel) as usize
}

/// The index of `at` in `tensor`, through its strides (any layout of that shape).
#[cube]
fn strided_index<F: Float>(tensor: &Tensor<F>, at: Coordinates) -> usize {
    at.batch as usize * tensor.stride(0)
        + at.head as usize * tensor.stride(1)
        + at.position as usize * tensor.stride(2)
        + at.channel as usize * tensor.stride(3)
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn split_kernel<F: Float>(
    qkv: &Tensor<F>,
    q: &mut Tensor<F>,
    k: &mut Tensor<F>,
    v: &mut Tensor<F>,
    values: u32,
    seq: u32,
    heads: u32,
    head_dim: u32,
    #[define(F)] _dtype: StorageType,
) {
    let index = unit_index();
    if index < values {
        let (which, coordinates) = destination(index, seq, heads, head_dim);
        let at = contiguous_index(coordinates, seq, heads, head_dim);
        let value = qkv[index as usize];
        if which == 0 {
            q[at] = value;
        } else if which == 1 {
            k[at] = value;
        } else {
            v[at] = value;
        }
    }
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn merge_kernel<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    qkv: &mut Tensor<F>,
    values: u32,
    seq: u32,
    heads: u32,
    head_dim: u32,
    #[define(F)] _dtype: StorageType,
) {
    let index = unit_index();
    if index < values {
        let (which, at) = destination(index, seq, heads, head_dim);
        let value = if which == 0 {
            q[strided_index(q, at)]
        } else if which == 1 {
            k[strided_index(k, at)]
        } else {
            v[strided_index(v, at)]
        };
        qkv[index as usize] = value;
    }
}

/// `[q, k, v]` of `qkv`, each `[batch, head, seq, head_dim]`, in `qkv`'s dtype.
pub fn split<R: CubeRuntime>(qkv: CubeTensor<R>, heads: Heads) -> [CubeTensor<R>; 3] {
    let qkv = into_contiguous(qkv);
    let dtype = qkv.dtype;
    let outputs = [(); 3].map(|_| empty(&qkv, heads.head_shape(), dtype));
    let (cube_count, cube_dim) = elementwise_launch(heads.values());
    let [q, k, v] = outputs.clone();
    split_kernel::launch::<R>(
        &qkv.client,
        cube_count,
        cube_dim,
        qkv.clone().into_tensor_arg(),
        q.into_tensor_arg(),
        k.into_tensor_arg(),
        v.into_tensor_arg(),
        heads.values() as u32,
        heads.seq as u32,
        heads.heads as u32,
        heads.head_dim as u32,
        dtype.into(),
    );
    outputs
}

/// The `[batch, seq, 3·n_embd]` tensor whose [`split`] is `[q, k, v]` (all in one dtype, each
/// `[batch, head, seq, head_dim]` in any layout: read through its strides).
pub fn merge<R: CubeRuntime>(parts: [CubeTensor<R>; 3], heads: Heads) -> CubeTensor<R> {
    let [q, k, v] = parts;
    let dtype: DType = q.dtype;
    let qkv = empty(&q, heads.qkv_shape(), dtype);
    let (cube_count, cube_dim) = elementwise_launch(heads.values());
    merge_kernel::launch::<R>(
        &q.client.clone(),
        cube_count,
        cube_dim,
        q.into_tensor_arg(),
        k.into_tensor_arg(),
        v.into_tensor_arg(),
        qkv.clone().into_tensor_arg(),
        heads.values() as u32,
        heads.seq as u32,
        heads.heads as u32,
        heads.head_dim as u32,
        dtype.into(),
    );
    qkv
}
