use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;

use crate::config::{ModelConfig, Positional};
use crate::init::INIT_STD;

/// Position information added to the token embeddings.
///
/// Learned positions are an embedding table; sinusoidal ones hold no parameters and are
/// computed for the sequence length at hand; rotary ones add nothing here (attention rotates
/// its queries and keys, `query_key.rs`).
#[derive(Module, Debug)]
pub struct PositionalEncoding<B: Backend> {
    learned: Option<Embedding<B>>,
    n_embd: usize,
    /// Whether anything is added (not for rotary positions).
    #[module(skip)]
    additive: bool,
}

impl<B: Backend> PositionalEncoding<B> {
    pub fn new(config: &ModelConfig, device: &B::Device) -> Self {
        let learned = match config.positional {
            Positional::Learned => Some(
                EmbeddingConfig::new(config.block_size, config.n_embd)
                    .with_initializer(burn::module::Initializer::Normal {
                        mean: 0.0,
                        std: INIT_STD,
                    })
                    .init(device),
            ),
            Positional::Sinusoidal | Positional::Rotary => None,
        };
        Self {
            learned,
            n_embd: config.n_embd,
            additive: config.positional != Positional::Rotary,
        }
    }

    /// Encodings for positions `start..start + len`, shape `[1, len, n_embd]`; `None` for
    /// rotary positions.
    pub fn forward(&self, start: usize, len: usize, device: &B::Device) -> Option<Tensor<B, 3>> {
        let end = start + len;
        match &self.learned {
            Some(embedding) => {
                let positions = Tensor::<B, 1, Int>::arange(start as i64..end as i64, device);
                Some(embedding.forward(positions.unsqueeze::<2>()))
            }
            None if self.additive => Some(
                sinusoidal_table(end, self.n_embd, device)
                    .slice([start..end, 0..self.n_embd])
                    .unsqueeze::<3>(),
            ),
            None => None,
        }
    }
}

/// `PE[pos, 2i] = sin(pos / 10000^(2i/d))`, `PE[pos, 2i+1] = cos(pos / 10000^(2i/d))`.
pub fn sinusoidal_table<B: Backend>(seq_len: usize, d: usize, device: &B::Device) -> Tensor<B, 2> {
    let mut table = Vec::with_capacity(seq_len * d);
    for pos in 0..seq_len {
        for i in 0..d {
            let angle = pos as f64 / 10000f64.powf((2 * (i / 2)) as f64 / d as f64);
            table.push(if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    Tensor::from_data(TensorData::new(table, [seq_len, d]), device)
}
