use burn::module::Param;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, Linear, LinearConfig,
};
use burn::prelude::*;

use quill_backend::Kernels;

use crate::block::Block;
use crate::compute::Compute;
use crate::config::{ModelConfig, Norm};
use crate::init::{INIT_STD, layer_norm, normal};
use crate::kv_cache::KvCache;
use crate::noise::Noise;
use crate::norm::normalize;
use crate::positional::PositionalEncoding;

/// The decoder: token embedding plus positions, `n_layer` blocks, a final layer norm and a head
/// that scores every vocabulary character for the next position.
#[derive(Module, Debug)]
pub struct Gpt<B: Backend> {
    token_embedding: Embedding<B>,
    positional: PositionalEncoding<B>,
    dropout: Dropout,
    blocks: Vec<Block<B>>,
    ln_final: LayerNorm<B>,
    /// `None` when the head is tied to `token_embedding`.
    head: Option<Linear<B>>,
    /// Which kernels run the model's operations, and where its matrix products run in half
    /// precision under f32 weights (training only).
    #[module(skip)]
    compute: Compute,
    /// The longest context, and the size of the key/value cache's buffers.
    #[module(skip)]
    block_size: usize,
    /// Whether the final norm is a layer or an RMS norm.
    #[module(skip)]
    norm: Norm,
    /// `C` of the logits' soft cap `C·tanh(logits / C)`; 0 for none.
    #[module(skip)]
    logit_softcap: f64,
}

impl<B: Backend> Gpt<B> {
    pub fn new(config: &ModelConfig, vocab_size: usize, device: &B::Device) -> Self {
        let head = (!config.tie_weights).then(|| {
            LinearConfig::new(config.n_embd, vocab_size)
                .with_bias(false)
                .with_initializer(normal(INIT_STD))
                .init(device)
        });
        Self {
            token_embedding: EmbeddingConfig::new(vocab_size, config.n_embd)
                .with_initializer(normal(INIT_STD))
                .init(device),
            positional: PositionalEncoding::new(config, device),
            dropout: DropoutConfig::new(config.dropout).init(),
            blocks: (0..config.n_layer)
                .map(|_| Block::new(config, device))
                .collect(),
            ln_final: layer_norm(config, device),
            head,
            compute: Compute::OFF,
            block_size: config.block_size,
            norm: config.norm,
            logit_softcap: config.logit_softcap,
        }
    }

    /// The model computing as `compute` says: its kernels, its products' precision.
    pub fn with_compute(self, compute: Compute) -> Self {
        Self { compute, ..self }
    }

    /// The model with its operations on `kernels` (its products' precision unchanged).
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        let compute = self.compute.with_kernels(kernels);
        Self { compute, ..self }
    }

    /// The kernels of the model's operations (the optimizer's clipping uses the same).
    pub fn kernels(&self) -> Kernels {
        self.compute.kernels
    }

    /// The model with only the first `vocab_size` tokens: their embeddings and logits are
    /// unchanged. For checkpoints whose vocabulary was padded beyond the tokenizer's (nanoGPT
    /// pads GPT-2's 50257 tokens to 50304); the padding ids are never a tokenizer's output, and
    /// leaving them out of the softmax changes a probability by at most their share of it.
    pub fn truncate_vocab(mut self, vocab_size: usize) -> Self {
        let keep = |weight: Tensor<B, 2>, dim: usize| {
            let mut ranges = weight.dims().map(|n| 0..n);
            ranges[dim] = 0..vocab_size.min(ranges[dim].end);
            weight.slice(ranges)
        };
        let embedding = self.token_embedding.weight.val();
        self.token_embedding.weight = Param::from_tensor(keep(embedding, 0));
        if let Some(head) = &mut self.head {
            // burn's `Linear` weight is `[d_in, d_out]`.
            head.weight = Param::from_tensor(keep(head.weight.val(), 1));
        }
        self
    }

    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// Next-character logits for every position: `tokens: [batch, seq]` to
    /// `[batch, seq, vocab]`. `seq` must not exceed the configured `block_size`.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        // One dropout seed for the whole pass, where the GPU kernels apply dropout.
        let noise = Noise::draw(self.dropout.prob, &tokens.device(), &self.compute.kernels);
        let mut x = self.embed(tokens, 0, &noise);
        for (layer, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, self.compute, &noise.layer(layer));
        }
        self.logits(x, self.compute)
    }

    /// Logits of `tokens`, the positions that follow those held in `cache` (empty for a new
    /// sequence), whose keys and values are added to `cache`. Equal to the last positions of
    /// [`forward`](Self::forward) over the whole sequence, at a fraction of the work when
    /// decoding one character at a time. `cache.len() + seq` must not exceed `block_size`.
    pub fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
    ) -> Tensor<B, 3> {
        let mut x = self.embed(tokens, cache.len(), &Noise::none());
        let layers = cache.layers(self.blocks.len());
        for (block, layer) in self.blocks.iter().zip(layers) {
            x = block.forward_cached(x, layer, self.block_size, self.compute.full_precision());
        }
        self.logits(x, self.compute.full_precision())
    }

    fn embed(&self, tokens: Tensor<B, 2, Int>, start: usize, noise: &Noise<B>) -> Tensor<B, 3> {
        let [_, seq] = tokens.dims();
        let device = tokens.device();
        let x = self.token_embedding.forward(tokens);
        let x = match self.positional.forward(start, seq, &device) {
            Some(positions) => x + positions,
            None => x,
        };
        noise.dropout(x, &self.dropout, 0, &self.compute.kernels)
    }

    /// Logits in f32, for the loss's softmax, soft-capped where the config says so.
    fn logits(&self, x: Tensor<B, 3>, compute: Compute) -> Tensor<B, 3> {
        let x = normalize(self.norm, &self.ln_final, x, &compute.kernels);
        let logits = compute.up(match &self.head {
            Some(head) => compute.linear(head, x),
            // Tied head: logits = x · Eᵀ, so the embedding learns from both ends.
            None => {
                let embedding = self.token_embedding.weight.val().transpose();
                compute.linear_weight(embedding, None, x)
            }
        });
        match self.logit_softcap > 0.0 {
            true => (logits / self.logit_softcap).tanh() * self.logit_softcap,
            false => logits,
        }
    }

    /// Mean cross-entropy of predicting `targets` (both `[batch, seq]`), with the logits.
    pub fn forward_loss(
        &self,
        tokens: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
    ) -> (Tensor<B, 1>, Tensor<B, 3>) {
        let logits = self.forward(tokens);
        let [batch, seq, vocab] = logits.dims();
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(
                logits.clone().reshape([batch * seq, vocab]),
                targets.reshape([batch * seq]),
            );
        (loss, logits)
    }

    pub fn vocab_size(&self) -> usize {
        self.token_embedding.weight.dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Positional;
    use crate::kv_cache::KvCache;
    use burn::backend::NdArray;

    type B = NdArray;

    fn small(positional: Positional, tie_weights: bool) -> ModelConfig {
        ModelConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 16,
            block_size: 12,
            dropout: 0.0,
            positional,
            ff_width: 0,
            bias: true,
            tie_weights,
            ..ModelConfig::default()
        }
    }

    /// Every option of the modern recipe on.
    fn modern() -> ModelConfig {
        use crate::config::{Activation, Norm};
        ModelConfig {
            activation: Activation::Swiglu,
            norm: Norm::Rms,
            qk_norm: true,
            logit_softcap: 2.0,
            ..small(Positional::Rotary, true)
        }
    }

    const POSITIONALS: [Positional; 3] = [
        Positional::Learned,
        Positional::Sinusoidal,
        Positional::Rotary,
    ];

    fn tokens(ids: &[i32], batch: usize) -> Tensor<B, 2, Int> {
        let data: Vec<i32> = ids
            .iter()
            .copied()
            .cycle()
            .take(ids.len() * batch)
            .collect();
        Tensor::from_data(
            TensorData::new(data, [batch, ids.len()]),
            &Default::default(),
        )
    }

    #[test]
    fn logits_have_batch_seq_vocab_shape() {
        for positional in POSITIONALS {
            for tie in [true, false] {
                let model = Gpt::<B>::new(&small(positional, tie), 11, &Default::default());
                let logits = model.forward(tokens(&[1, 2, 3, 4, 5], 3));
                assert_eq!(logits.dims(), [3, 5, 11]);
            }
        }
    }

    #[test]
    fn a_truncated_vocabulary_keeps_the_logits_of_the_tokens_it_keeps() {
        let device = Default::default();
        for tie in [true, false] {
            let gpt = Gpt::<B>::new(&small(Positional::Learned, tie), 11, &device);
            let tokens = Tensor::<B, 2, Int>::from_ints([[0, 3, 6, 2]], &device);
            let full = gpt.forward(tokens.clone());
            let kept = gpt.truncate_vocab(7).forward(tokens);
            assert_eq!(kept.dims(), [1, 4, 7]);
            let expected = full.slice([0..1, 0..4, 0..7]);
            kept.into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Default::default());
        }
    }

    #[test]
    fn attention_is_causal() {
        // Changing the token at position t must leave the logits at every position < t alone,
        // and (to show the test can fail) change those at t.
        let configs = POSITIONALS.map(|p| small(p, true));
        for config in configs.iter().chain([&modern()]) {
            let model = Gpt::<B>::new(config, 11, &Default::default());
            let original = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
            let base = model.forward(tokens(&original, 1));
            for t in 1..original.len() {
                let mut changed = original;
                changed[t] = (changed[t] + 1) % 11;
                let other = model.forward(tokens(&changed, 1));
                let before = |l: &Tensor<B, 3>| l.clone().slice([0..1, 0..t, 0..11]);
                before(&base)
                    .into_data()
                    .assert_approx_eq::<f32>(&before(&other).into_data(), Default::default());
                let at = |l: &Tensor<B, 3>| l.clone().slice([0..1, t..t + 1, 0..11]);
                let diff = (at(&base) - at(&other)).abs().max().into_scalar();
                assert!(diff > 1e-6, "position {t} ignores its own token");
            }
        }
    }

    #[test]
    fn cached_decoding_matches_full_forward() {
        // Prefill three tokens, then feed the rest one, two and one at a time: every step's
        // logits must equal the matching positions of one full forward pass.
        let configs = POSITIONALS.map(|p| small(p, true));
        for config in configs.iter().chain([&modern()]) {
            let model = Gpt::<B>::new(config, 11, &Default::default());
            let ids = [3, 1, 4, 1, 5, 9, 2];
            let full = model.forward(tokens(&ids, 1));
            let mut cache = KvCache::new();
            let mut start = 0;
            for end in [3, 4, 6, 7] {
                let step = model.forward_cached(tokens(&ids[start..end], 1), &mut cache);
                assert_eq!(cache.len(), end);
                full.clone()
                    .slice([0..1, start..end, 0..11])
                    .into_data()
                    .assert_approx_eq::<f32>(&step.into_data(), Default::default());
                start = end;
            }
        }
    }

    #[test]
    fn the_soft_cap_bounds_the_logits_and_each_option_changes_the_function() {
        use crate::config::{Activation, Norm};
        let device = Default::default();
        let ids = tokens(&[3, 1, 4, 1, 5, 9, 2], 1);
        let capped = Gpt::<B>::new(&modern(), 11, &device);
        let logits = capped.forward(ids.clone());
        assert!(logits.clone().abs().max().into_scalar() <= 2.0);
        // The same weights without the cap: the logits differ (so the cap is applied).
        let uncapped = Gpt::<B> {
            logit_softcap: 0.0,
            ..capped.clone()
        };
        let diff = (uncapped.forward(ids.clone()) - logits)
            .abs()
            .max()
            .into_scalar();
        assert!(diff > 1e-4, "{diff}");
        // Each option, flipped on its own on the same weights, changes the logits.
        let base = Gpt::<B>::new(&small(Positional::Learned, true), 11, &device);
        let reference = base.forward(ids.clone());
        let changed = |model: Gpt<B>| {
            let d = (model.forward(ids.clone()) - reference.clone()).abs().max();
            d.into_scalar() > 1e-5
        };
        assert!(changed(Gpt {
            norm: Norm::Rms,
            ..base.clone()
        }));
        let mut blocks = base.blocks.clone();
        for block in &mut blocks {
            block.set_activation(Activation::Relu2);
        }
        assert!(changed(Gpt {
            blocks,
            ..base.clone()
        }));
    }

    #[test]
    fn zero_initialized_projections_make_every_block_the_identity() {
        let config = ModelConfig {
            zero_init_proj: true,
            ..small(Positional::Learned, true)
        };
        let model = Gpt::<B>::new(&config, 11, &Default::default());
        let x = Tensor::<B, 3>::random(
            [1, 5, 16],
            burn::tensor::Distribution::Default,
            &Default::default(),
        );
        for block in &model.blocks {
            let y = block.forward(x.clone(), model.compute, &Noise::none());
            y.into_data()
                .assert_approx_eq::<f32>(&x.clone().into_data(), Default::default());
        }
    }

    #[test]
    fn untrained_loss_is_near_uniform() {
        // nanoGPT-style init makes the first loss close to ln(vocab). The weights are random
        // (tests share the backend's generator), so the bound leaves room for that draw.
        let model = Gpt::<B>::new(&small(Positional::Learned, true), 11, &Default::default());
        let inputs = [1, 2, 3, 4, 5, 6, 7, 8];
        let targets = [2, 3, 4, 5, 6, 7, 8, 9];
        let (loss, _) = model.forward_loss(tokens(&inputs, 4), tokens(&targets, 4));
        let loss = loss.into_scalar();
        assert!((loss - 11f32.ln()).abs() < 0.25, "loss {loss}");
    }

    #[test]
    fn dropout_path_matches_fused_attention_when_disabled() {
        // The explicit attention (used for attention dropout in training) and burn's fused op
        // must compute the same function; with p = 0 in the autodiff backend both are compared.
        use burn::module::AutodiffModule;
        type A = burn::backend::Autodiff<NdArray>;
        let mut config = small(Positional::Learned, true);
        config.dropout = 1e-9;
        let device = Default::default();
        let model = Gpt::<A>::new(&config, 11, &device);
        let ids = [3, 1, 4, 1, 5, 9, 2, 6];
        let input = Tensor::<A, 2, Int>::from_data(TensorData::new(ids.to_vec(), [1, 8]), &device);
        let explicit = model.forward(input.clone());
        let fused = model.valid().forward(input.inner());
        explicit
            .inner()
            .into_data()
            .assert_approx_eq::<f32>(&fused.into_data(), Default::default());
    }
}
