use serde::{Deserialize, Serialize};

/// How the model knows where each character is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Positional {
    /// A trained embedding per position (nanoGPT, GPT-2).
    Learned,
    /// Fixed sine/cosine waves of geometric wavelengths ("Attention Is All You Need").
    Sinusoidal,
    /// Rotary embeddings (RoFormer): queries and keys rotated by their position, so that
    /// attention sees relative positions; nothing is added to the token embeddings.
    Rotary,
}

/// The feed-forward part's nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact (erf) GELU, nanoGPT's.
    Gelu,
    /// GELU's tanh approximation, GPT-2's `gelu_new`.
    GeluTanh,
    /// ReLU squared (Primer; modded-nanogpt).
    Relu2,
    /// SiLU-gated linear unit (PaLM, Llama): a third matrix gates the hidden layer.
    Swiglu,
}

/// How the residual stream is normalized before each branch and before the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Layer norm: mean and variance (nanoGPT, GPT-2).
    Layer,
    /// RMS norm: root mean square only, no centring (Llama, modded-nanogpt).
    Rms,
}

/// `[model]`: the shape of the network. The vocabulary size is not here: it comes from the
/// corpus and is saved with each run in `vocab.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Number of Transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block; must divide `n_embd`.
    pub n_head: usize,
    /// Width of the residual stream (embedding size).
    pub n_embd: usize,
    /// Longest context, in characters, the model reads at once.
    pub block_size: usize,
    /// Dropout probability on embeddings, attention weights and residual branches, in [0, 1).
    pub dropout: f64,
    /// `"learned"`, `"sinusoidal"` or `"rotary"` position encoding.
    pub positional: Positional,
    /// Base of the rotary embeddings' wavelengths (`positional = "rotary"` only).
    pub rope_theta: f64,
    /// Hidden width of the feed-forward part; 0 means `4 * n_embd`.
    pub ff_width: usize,
    /// Whether linear layers and layer norms have bias terms (nanoGPT's shakespeare recipe: no).
    pub bias: bool,
    /// Whether the output head reuses the token embedding matrix (weight tying).
    pub tie_weights: bool,
    /// `"gelu"`, `"gelu_tanh"`, `"relu2"` or `"swiglu"`.
    pub activation: Activation,
    /// `"layer"` or `"rms"`.
    pub norm: Norm,
    /// RMS-normalize each head's queries and keys before their product (no gains).
    pub qk_norm: bool,
    /// Start the attention and feed-forward output projections at zero, so every block begins
    /// as the identity.
    pub zero_init_proj: bool,
    /// Soft cap of the logits, `C·tanh(logits / C)`; 0 turns it off.
    pub logit_softcap: f64,
}

impl Default for ModelConfig {
    /// nanoGPT's shakespeare_char model.
    fn default() -> Self {
        Self {
            n_layer: 6,
            n_head: 6,
            n_embd: 384,
            block_size: 256,
            dropout: 0.2,
            positional: Positional::Learned,
            ff_width: 0,
            bias: false,
            tie_weights: true,
            rope_theta: 10_000.0,
            activation: Activation::Gelu,
            norm: Norm::Layer,
            qk_norm: false,
            zero_init_proj: false,
            logit_softcap: 0.0,
        }
    }
}

impl ModelConfig {
    /// The feed-forward hidden width, resolving the `0` default: `4 * n_embd`, or for SwiGLU
    /// (three matrices instead of two) two thirds of that rounded up to a multiple of 8, so
    /// the part keeps about the same number of weights.
    pub fn ff_hidden(&self) -> usize {
        match (self.ff_width, self.activation) {
            (0, Activation::Swiglu) => (8 * self.n_embd / 3).div_ceil(8) * 8,
            (0, _) => 4 * self.n_embd,
            (width, _) => width,
        }
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Checks what the types cannot: every size at least 1, heads that split the width evenly,
    /// a dropout probability. The message names the first key that fails, as
    /// ``invalid value for `model.KEY`: PROBLEM``.
    pub fn validate(&self) -> Result<(), String> {
        let invalid =
            |key: &str, problem: String| Err(format!("invalid value for `model.{key}`: {problem}"));
        for (key, size) in [
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd", self.n_embd),
        ] {
            if size == 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            let problem = format!(
                "{} is not divisible by model.n_head = {}",
                self.n_embd, self.n_head
            );
            return invalid("n_embd", problem);
        }
        if self.block_size == 0 {
            return invalid("block_size", "must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return invalid("dropout", format!("{} is outside [0, 1)", self.dropout));
        }
        if self.positional == Positional::Rotary && !self.head_dim().is_multiple_of(2) {
            let problem = format!(
                "\"rotary\" rotates pairs of a head's dimensions, and model.n_embd / model.n_head = {} is odd",
                self.head_dim()
            );
            return invalid("positional", problem);
        }
        if !(self.rope_theta > 0.0 && self.rope_theta.is_finite()) {
            let problem = format!("{} must be a finite number above 0", self.rope_theta);
            return invalid("rope_theta", problem);
        }
        if !(self.logit_softcap >= 0.0 && self.logit_softcap.is_finite()) {
            let problem = format!("{} must be 0 (off) or above", self.logit_softcap);
            return invalid("logit_softcap", problem);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_first_bad_key() {
        assert_eq!(ModelConfig::default().validate(), Ok(()));
        let bad = |change: fn(&mut ModelConfig)| {
            let mut config = ModelConfig::default();
            change(&mut config);
            config.validate().unwrap_err()
        };
        assert_eq!(
            bad(|c| c.n_head = 0),
            "invalid value for `model.n_head`: must be at least 1"
        );
        assert_eq!(
            bad(|c| c.n_embd = 100),
            "invalid value for `model.n_embd`: 100 is not divisible by model.n_head = 6"
        );
        assert!(bad(|c| c.dropout = f64::NAN).contains("`model.dropout`"));
        assert!(bad(|c| c.block_size = 0).contains("`model.block_size`"));
        let odd_heads = bad(|c| {
            c.positional = Positional::Rotary;
            c.n_embd = 390;
        });
        assert!(odd_heads.starts_with("invalid value for `model.positional`"));
        assert!(odd_heads.contains("= 65 is odd"), "{odd_heads}");
        assert!(bad(|c| c.rope_theta = 0.0).contains("`model.rope_theta`"));
        assert!(bad(|c| c.logit_softcap = -1.0).contains("`model.logit_softcap`"));
        assert!(bad(|c| c.logit_softcap = f64::NAN).contains("`model.logit_softcap`"));
    }

    #[test]
    fn swiglu_keeps_about_the_feed_forwards_weights() {
        let mut config = ModelConfig::default();
        assert_eq!(config.ff_hidden(), 4 * 384);
        config.activation = Activation::Swiglu;
        // 8/3 · 384 = 1024: three 384×1024 matrices, two 384×1536 ones before.
        assert_eq!(config.ff_hidden(), 1024);
        config.n_embd = 128;
        assert_eq!(config.ff_hidden(), 344);
        config.ff_width = 100;
        assert_eq!(config.ff_hidden(), 100);
    }
}
