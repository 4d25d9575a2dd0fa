//! The mean next-character loss of a model over a fixed, seeded set of windows of a split: the
//! same windows, for the same config, as the val loss measured during training.

use burn::data::dataloader::DataLoader;
use burn::prelude::*;
use quill_data::{WindowLoader, Windows};
use quill_model::Gpt;

/// What [`evaluate`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy in nats per token.
    pub loss: f64,
    pub batches: usize,
    pub windows: usize,
}

impl Evaluation {
    pub fn bits_per_token(&self) -> f64 {
        self.loss / std::f64::consts::LN_2
    }

    /// Bits per byte of text, for a split of `tokens` tokens holding `bytes` bytes: the measure
    /// that compares models with different tokenizers.
    pub fn bits_per_byte(&self, tokens: usize, bytes: usize) -> f64 {
        self.bits_per_token() * tokens as f64 / bytes.max(1) as f64
    }
}

/// Scores `gpt` on `windows` of one split of a corpus. On a backend without autodiff, dropout
/// is off, as inference wants.
pub fn evaluate<B: Backend>(gpt: &Gpt<B>, windows: Windows, device: &B::Device) -> Evaluation {
    let batch_size = windows.batch_size;
    let loader = WindowLoader::<B>::fixed(windows, device.clone());
    let mut sum = 0.0;
    let mut batches = 0;
    for batch in loader.iter() {
        let (loss, _) = gpt.forward_loss(batch.inputs, batch.targets);
        sum += loss.into_scalar().elem::<f64>();
        batches += 1;
    }
    Evaluation {
        loss: sum / batches.max(1) as f64,
        batches,
        windows: batches * batch_size,
    }
}

#[cfg(test)]
mod tests {
    use quill_data::Tokens;

    use super::*;
    use burn::backend::NdArray;
    use quill_model::ModelConfig;

    #[test]
    fn an_untrained_model_scores_about_log_vocab_and_repeats_itself() {
        let config = ModelConfig {
            n_layer: 1,
            n_head: 2,
            n_embd: 16,
            block_size: 8,
            dropout: 0.0,
            ..Default::default()
        };
        let device = Default::default();
        let gpt = Gpt::<NdArray>::new(&config, 20, &device);
        let tokens: Tokens = (0..400)
            .map(|i| (i * 7 % 20) as u32)
            .collect::<Vec<_>>()
            .into();
        let windows = Windows {
            tokens,
            block_size: 8,
            batch_size: 4,
            batches: 3,
            seed: 5,
        };
        let first = evaluate(&gpt, windows.clone(), &device);
        assert_eq!((first.batches, first.windows), (3, 12));
        assert!((first.loss - 20f64.ln()).abs() < 0.1, "{first:?}");
        assert!((first.bits_per_token() - first.loss / 2f64.ln()).abs() < 1e-12);
        assert_eq!(evaluate(&gpt, windows, &device), first);
    }
}
