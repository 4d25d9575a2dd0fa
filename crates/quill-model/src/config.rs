use serde::{Deserialize, Serialize};

/// How the model knows where each character is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Positional {
    /// A trained embedding per position (nanoGPT, GPT-2).
    Learned,
    /// Fixed sine/cosine waves of geometric wavelengths ("Attention Is All You Need").
    Sinusoidal,
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
    /// `"learned"` or `"sinusoidal"` position encoding.
    pub positional: Positional,
    /// Hidden width of the feed-forward part; 0 means `4 * n_embd`.
    pub ff_width: usize,
    /// Whether linear layers and layer norms have bias terms (nanoGPT's shakespeare recipe: no).
    pub bias: bool,
    /// Whether the output head reuses the token embedding matrix (weight tying).
    pub tie_weights: bool,
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
        }
    }
}

impl ModelConfig {
    /// The feed-forward hidden width, resolving the `0 = 4 * n_embd` default.
    pub fn ff_hidden(&self) -> usize {
        if self.ff_width == 0 {
            4 * self.n_embd
        } else {
            self.ff_width
        }
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }
}
