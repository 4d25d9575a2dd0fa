//! The model's operations: each burn's, or a kernel of quill's where [`Kernels`] chooses it
//! and the tensors' backend has one.

use burn::prelude::*;
use burn::tensor::DType;

use crate::Kernels;

/// Dropout at `rate` for one use in a forward pass, its mask hashed from `seed` (`[2]` uniform
/// values drawn on the device once per pass) and `salt` (each use in the pass has its own),
/// inside the kernel that applies it (GPU).
#[derive(Debug, Clone)]
pub struct DropoutMask<B: Backend> {
    pub rate: f64,
    pub seed: Tensor<B, 1>,
    pub salt: u32,
}

#[cfg(feature = "gpu")]
impl<B: Backend> From<DropoutMask<B>> for quill_gpu_kernels::DropoutMask<B> {
    fn from(mask: DropoutMask<B>) -> Self {
        Self {
            rate: mask.rate,
            seed: mask.seed,
            salt: mask.salt,
        }
    }
}

/// A layer norm's input, scale and shift.
pub type LayerNormInputs<B, const D: usize> = (Tensor<B, D>, Tensor<B, 1>, Option<Tensor<B, 1>>);

impl Kernels {
    /// `a·b` over the last two dimensions, both with the same batch dimensions: cuBLAS with
    /// [`Matmul::Cublas`](crate::Matmul::Cublas) on quill-cuda's backend, burn's product
    /// otherwise.
    pub fn matmul<B: Backend, const D: usize>(
        &self,
        a: Tensor<B, D>,
        b: Tensor<B, D>,
    ) -> Tensor<B, D> {
        #[cfg(feature = "cuda")]
        let [a, b] = match self.cublas() {
            true => match quill_cublas::matmul(a, b) {
                Ok(product) => return product,
                Err(inputs) => inputs,
            },
            false => [a, b],
        };
        a.matmul(b)
    }

    /// `x·weight + bias` of `x: [rows, d_in]`, `weight: [d_in, d_out]`, `bias: [d_out]`:
    /// cuBLAS's product (as [`matmul`](Self::matmul)), quill-kernels' on burn-flex in f32 (both
    /// backward products side by side), burn's `linear` otherwise.
    pub fn linear<B: Backend>(
        &self,
        x: Tensor<B, 2>,
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    ) -> Tensor<B, 2> {
        #[cfg(feature = "cuda")]
        let (x, weight) = match self.cublas() {
            true => match quill_cublas::matmul(x, weight) {
                Ok(y) => {
                    return match bias {
                        Some(bias) => y + bias.unsqueeze(),
                        None => y,
                    };
                }
                Err([x, weight]) => (x, weight),
            },
            false => (x, weight),
        };
        #[cfg(feature = "cpu")]
        let (x, weight, bias) = match self.cpu {
            true => match quill_kernels::fused_linear(x, weight, bias) {
                Ok(y) => return y,
                Err(inputs) => inputs,
            },
            false => (x, weight, bias),
        };
        burn::tensor::module::linear(x, weight, bias)
    }

    /// `(x − mean)/√(var + ε)·γ + β` over the last dimension in one kernel each way (burn-flex
    /// or a GPU runner's backend, f32); `Err` with the inputs for burn's `LayerNorm`.
    pub fn layer_norm<B: Backend, const D: usize>(
        &self,
        inputs: LayerNormInputs<B, D>,
        epsilon: f64,
    ) -> Result<Tensor<B, D>, LayerNormInputs<B, D>> {
        #[cfg(feature = "cpu")]
        let inputs = match self.cpu {
            true => {
                let (x, gamma, beta) = inputs;
                match quill_kernels::fused_layer_norm(x, gamma, beta, epsilon) {
                    Ok(y) => return Ok(y),
                    Err(inputs) => inputs,
                }
            }
            false => inputs,
        };
        #[cfg(feature = "gpu")]
        let inputs = match self.layer_norm {
            true => match quill_gpu_kernels::layer_norm(inputs, epsilon) {
                Ok(y) => return Ok(y),
                Err(inputs) => inputs,
            },
            false => inputs,
        };
        let _ = epsilon;
        Err(inputs)
    }

    /// The exact (erf) GELU, `x·Φ(x)`: quill-kernels' on burn-flex, burn's otherwise.
    pub fn gelu<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        #[cfg(feature = "cpu")]
        if self.cpu {
            return quill_kernels::gelu(x);
        }
        burn::tensor::activation::gelu(x)
    }

    /// Causal attention of `qkv: [batch, seq, 3·n_embd]` in one operation with `dropout` on
    /// its weights, the heads merged (`[batch, seq, n_embd]`): quill-kernels' on burn-flex in
    /// f32; `Err(qkv)` otherwise.
    pub fn causal_attention<B: Backend>(
        &self,
        qkv: Tensor<B, 3>,
        n_head: usize,
        dropout: f64,
    ) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
        #[cfg(feature = "cpu")]
        if self.cpu {
            return quill_kernels::fused_causal_attention(qkv, n_head, dropout);
        }
        let _ = (n_head, dropout);
        Err(qkv)
    }

    /// Whether attention's softmax runs on [`causal_softmax`](Self::causal_softmax)'s kernel
    /// for `B`'s tensors (the model asks before it leaves the scores' scale to it).
    #[cfg_attr(not(feature = "gpu"), allow(clippy::extra_unused_type_parameters))]
    pub fn softmax_on<B: Backend>(&self) -> bool {
        #[cfg(feature = "gpu")]
        return self.softmax && quill_gpu_kernels::softmax_runs_on::<B>();
        #[cfg(not(feature = "gpu"))]
        false
    }

    /// `dropout(softmax(scale · scores))` with keys after `i + past` masked for query `i`, the
    /// weights in `weights_dtype`, in one kernel each way (GPU); `Err(scores)` otherwise.
    pub fn causal_softmax<B: Backend, const D: usize>(
        &self,
        scores: Tensor<B, D>,
        scale: f64,
        past: usize,
        mask: Option<DropoutMask<B>>,
        weights_dtype: DType,
    ) -> Result<Tensor<B, D>, Tensor<B, D>> {
        #[cfg(feature = "gpu")]
        if self.softmax {
            let mask = mask.map(Into::into);
            return quill_gpu_kernels::causal_softmax(scores, scale, past, mask, weights_dtype);
        }
        let _ = (scale, past, mask, weights_dtype);
        Err(scores)
    }

    /// Queries, keys and values of `qkv: [batch, seq, 3·n_embd]`, each `[batch, head, seq,
    /// head_dim]`: one kernel each way on the GPU runners, burn's slices and views elsewhere.
    pub fn split_heads<B: Backend>(&self, qkv: Tensor<B, 3>, n_head: usize) -> [Tensor<B, 4>; 3] {
        #[cfg(feature = "gpu")]
        let qkv = match self.split_heads {
            true => match quill_gpu_kernels::split_heads(qkv, n_head) {
                Ok(parts) => return parts,
                Err(qkv) => qkv,
            },
            false => qkv,
        };
        let [batch, seq, width] = qkv.dims();
        let head_dim = width / 3 / n_head;
        let [q, k, v]: [Tensor<B, 3>; 3] = qkv.chunk(3, 2).try_into().expect("three chunks");
        [q, k, v].map(|t| t.reshape([batch, seq, n_head, head_dim]).swap_dims(1, 2))
    }

    /// Attention's output heads `y: [batch, head, seq, head_dim]` merged into `[batch, seq,
    /// n_embd]`: in training on the GPU runners with a backward pass that writes the heads'
    /// gradient contiguous once, burn's `swap_dims` and `reshape` elsewhere.
    pub fn merge_heads<B: Backend>(&self, y: Tensor<B, 4>) -> Tensor<B, 3> {
        #[cfg(feature = "gpu")]
        let y = match self.split_heads {
            true => match quill_gpu_kernels::merge_heads(y) {
                Ok(merged) => return merged,
                Err(y) => y,
            },
            false => y,
        };
        let [batch, head, seq, head_dim] = y.dims();
        y.swap_dims(1, 2).reshape([batch, seq, head * head_dim])
    }

    /// Whether a training pass on `B` should draw one dropout seed for the kernels that hash
    /// their masks from it ([`residual_dropout`](Self::residual_dropout), attention's softmax).
    #[cfg_attr(not(feature = "gpu"), allow(clippy::extra_unused_type_parameters))]
    pub fn seeded_dropout_on<B: Backend>(&self) -> bool {
        #[cfg(feature = "gpu")]
        return (self.dropout && quill_gpu_kernels::dropout_runs_on::<B>())
            || self.softmax_on::<B>();
        #[cfg(not(feature = "gpu"))]
        false
    }

    /// `x + dropout(h)` (or `dropout(h)` without `x`) in one kernel each way, the mask hashed
    /// from `mask`'s seed (GPU, training); `Err` with `x` and `h` for burn's `Dropout`.
    #[allow(clippy::type_complexity)]
    pub fn residual_dropout<B: Backend, const D: usize>(
        &self,
        x: Option<Tensor<B, D>>,
        h: Tensor<B, D>,
        mask: DropoutMask<B>,
    ) -> Result<Tensor<B, D>, (Option<Tensor<B, D>>, Tensor<B, D>)> {
        #[cfg(feature = "gpu")]
        if self.dropout {
            return quill_gpu_kernels::residual_dropout(x, h, mask.into())
                .map_err(|(x, h, _)| (x, h));
        }
        let _ = mask;
        Err((x, h))
    }
}
