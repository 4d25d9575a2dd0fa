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
    }
}
