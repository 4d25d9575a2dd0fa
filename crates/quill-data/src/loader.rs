//! burn data loaders over windows of a token split.
//!
//! Training draws fresh random windows every epoch (nanoGPT samples with replacement rather than
//! sweeping the text), so an "epoch" is just the evaluation interval. Validation uses one fixed,
//! seeded set of windows so that val losses are comparable between evaluations and runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::prelude::*;

use crate::Tokens;
use crate::windows::{Offsets, mix};

/// A batch of windows: `inputs[b, t]` predicts `targets[b, t]`.
#[derive(Debug, Clone)]
pub struct TokenBatch<B: Backend> {
    pub inputs: Tensor<B, 2, Int>,
    pub targets: Tensor<B, 2, Int>,
}

impl<B: Backend> TokenBatch<B> {
    /// Builds the batch of windows starting at `offsets`.
    pub fn from_offsets(
        tokens: &Tokens,
        offsets: &[usize],
        block_size: usize,
        device: &B::Device,
    ) -> Self {
        let mut inputs = Vec::with_capacity(offsets.len() * block_size);
        let mut targets = Vec::with_capacity(offsets.len() * block_size);
        // The target is the input shifted by one token: one read of `block_size + 1` ids.
        let mut window = Vec::with_capacity(block_size + 1);
        for &offset in offsets {
            window.clear();
            tokens.extend_i32(offset, block_size + 1, &mut window);
            inputs.extend_from_slice(&window[..block_size]);
            targets.extend_from_slice(&window[1..]);
        }
        let shape = [offsets.len(), block_size];
        Self {
            inputs: Tensor::from_data(TensorData::new(inputs, shape), device),
            targets: Tensor::from_data(TensorData::new(targets, shape), device),
        }
    }

    pub fn num_tokens(&self) -> usize {
        self.inputs.shape().num_elements()
    }
}

/// Where a training loader starts: `epoch` passes are complete and the next pass has already
/// trained on its first `batches` batches (non-zero after a run stopped mid-epoch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrainingPosition {
    pub epoch: u64,
    pub batches: usize,
}

/// How a [`WindowLoader`] picks its windows.
#[derive(Debug)]
enum Sampling {
    /// The same windows on every pass (validation).
    Fixed,
    /// New windows on every pass; `next_epoch` counts passes so that pass `e` of a resumed run
    /// draws exactly what pass `e` of an uninterrupted run drew. The first pass skips
    /// `skip_first` batches, taken by the time `next_epoch` has moved on.
    PerEpoch {
        next_epoch: AtomicU64,
        skip_first: AtomicUsize,
    },
}

/// Which windows a [`WindowLoader`] serves: `batches` batches of `batch_size` windows of
/// `block_size` tokens (and their shifted targets) from one token split, placed by `seed`.
#[derive(Debug, Clone)]
pub struct Windows {
    pub tokens: Tokens,
    pub block_size: usize,
    pub batch_size: usize,
    /// Batches per pass (for training, per epoch).
    pub batches: usize,
    pub seed: u64,
}

/// Which batches of each pass a loader serves: every `count`-th, from batch `index`. One
/// device trains all of them (`0` of `1`); with several, burn-train slices the loader into
/// one shard per device, and round `r` gives device `d` batch `r × count + d`, so each
/// optimizer step sums the same micro-batches as on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shard {
    index: usize,
    count: usize,
}

/// A [`DataLoader`] of the [`Windows`] of one token split.
#[derive(Debug)]
pub struct WindowLoader<B: Backend> {
    windows: Windows,
    sampling: Arc<Sampling>,
    shard: Shard,
    device: B::Device,
}

impl<B: Backend> WindowLoader<B> {
    /// Training windows: every pass (epoch) draws new ones, starting at `start` (the default
    /// position for a fresh run).
    ///
    /// Each batch also reseeds the backend's generator from `(seed, epoch, batch)`: dropout
    /// masks are then a function of the position too, so a run resumed at any batch repeats
    /// the uninterrupted one exactly.
    pub fn training(windows: Windows, start: TrainingPosition, device: B::Device) -> Self {
        let sampling = Sampling::PerEpoch {
            next_epoch: AtomicU64::new(start.epoch),
            skip_first: AtomicUsize::new(start.batches),
        };
        Self {
            windows,
            sampling: Arc::new(sampling),
            shard: Shard { index: 0, count: 1 },
            device,
        }
    }

    /// Validation windows: the same `batches * batch_size` windows on every pass.
    pub fn fixed(windows: Windows, device: B::Device) -> Self {
        Self {
            windows,
            sampling: Arc::new(Sampling::Fixed),
            shard: Shard { index: 0, count: 1 },
            device,
        }
    }

    /// The same loader (sharing its epoch counter) with `batches` batches on `device`.
    fn resized(&self, batches: usize, device: B::Device) -> Self {
        Self {
            windows: Windows {
                batches,
                ..self.windows.clone()
            },
            sampling: self.sampling.clone(),
            shard: self.shard,
            device,
        }
    }

    /// Shard `index` of `count` of this loader's batches (of a shard, a finer shard): its
    /// own pass counter, starting where this one stands, and its share of the batches to
    /// skip. `count` must divide the batches per pass.
    pub fn shard(&self, index: usize, count: usize) -> Self {
        let sampling = match self.sampling.as_ref() {
            Sampling::Fixed => Sampling::Fixed,
            Sampling::PerEpoch {
                next_epoch,
                skip_first,
            } => Sampling::PerEpoch {
                next_epoch: AtomicU64::new(next_epoch.load(Ordering::SeqCst)),
                skip_first: AtomicUsize::new(skip_first.load(Ordering::SeqCst) / count),
            },
        };
        Self {
            windows: self.windows.clone(),
            sampling: Arc::new(sampling),
            shard: Shard {
                index: self.shard.index + self.shard.count * index,
                count: self.shard.count * count,
            },
            device: self.device.clone(),
        }
    }

    /// Batches per pass of this shard.
    fn batches(&self) -> usize {
        self.windows.batches / self.shard.count
    }

    /// The offsets of the next pass, the batches of it to skip, and its epoch when the pass
    /// trains (and so reseeds the backend per batch).
    fn next_pass(&self) -> (Offsets, usize, Option<u64>) {
        let (stream, skip, epoch) = match self.sampling.as_ref() {
            Sampling::Fixed => (u64::MAX, 0, None),
            Sampling::PerEpoch {
                next_epoch,
                skip_first,
            } => {
                let epoch = next_epoch.fetch_add(1, Ordering::SeqCst);
                let skip = skip_first.swap(0, Ordering::SeqCst).min(self.batches());
                (epoch, skip, Some(epoch))
            }
        };
        let w = &self.windows;
        let offsets = Offsets::new(w.seed, stream, w.tokens.len(), w.block_size);
        (offsets, skip, epoch)
    }
}

impl<B: Backend> DataLoader<B, TokenBatch<B>> for WindowLoader<B> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<TokenBatch<B>> + 'a> {
        let (mut offsets, skip, epoch) = self.next_pass();
        let first = self.shard.index + skip * self.shard.count;
        offsets.skip(first * self.windows.batch_size);
        Box::new(WindowIter {
            loader: self,
            offsets,
            batch: skip,
            epoch,
        })
    }

    fn num_items(&self) -> usize {
        self.batches() * self.windows.batch_size
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, TokenBatch<B>>> {
        Arc::new(self.resized(self.windows.batches, device.clone()))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, TokenBatch<B>>> {
        // burn-train's split among devices asks for equal parts in order: part `i` of `n` is
        // served as shard `i` of `n`.
        let (len, total, size) = (end - start, self.num_items(), self.windows.batch_size);
        if len > 0
            && total.is_multiple_of(len)
            && start.is_multiple_of(len)
            && len.is_multiple_of(size)
        {
            return Arc::new(self.shard(start / len, total / len));
        }
        // Otherwise items are whole batches: a slice keeps the batches `start..end` covers.
        let batches = end.div_ceil(size) - start / size;
        Arc::new(self.resized(batches, self.device.clone()))
    }
}

struct WindowIter<'a, B: Backend> {
    loader: &'a WindowLoader<B>,
    /// Where the next batch's windows start, drawn batch by batch.
    offsets: Offsets,
    /// Index of the next batch of the pass.
    batch: usize,
    /// The training epoch this pass draws for; `None` for validation.
    epoch: Option<u64>,
}

impl<B: Backend> Iterator for WindowIter<'_, B> {
    type Item = TokenBatch<B>;

    fn next(&mut self) -> Option<Self::Item> {
        let (w, shard) = (&self.loader.windows, self.loader.shard);
        if self.batch >= self.loader.batches() {
            return None;
        }
        // The batch's number in the whole pass, which places its windows and dropout.
        let batch = shard.index + self.batch * shard.count;
        if let Some(epoch) = self.epoch {
            let stream = mix(epoch ^ 0xD20F_0A7E, batch as u64);
            B::seed(&self.loader.device, mix(w.seed, stream));
        }
        self.batch += 1;
        let offsets = self.offsets.take(w.batch_size);
        // The other shards' batches up to this shard's next one.
        self.offsets.skip((shard.count - 1) * w.batch_size);
        Some(TokenBatch::from_offsets(
            &w.tokens,
            &offsets,
            w.block_size,
            &self.loader.device,
        ))
    }
}

impl<B: Backend> DataLoaderIterator<TokenBatch<B>> for WindowIter<'_, B> {
    fn progress(&self) -> Progress {
        let size = self.loader.windows.batch_size;
        Progress::new(self.batch * size, self.loader.batches() * size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    /// Training passes reseed the backend's one generator: tests that draw them, or draw from
    /// the generator, take turns.
    static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// `batches` batches of four windows of eight tokens.
    fn windows(tokens: Tokens, batches: usize, seed: u64) -> Windows {
        Windows {
            tokens,
            block_size: 8,
            batch_size: 4,
            batches,
            seed,
        }
    }

    fn rows(batch: &TokenBatch<B>) -> (Vec<i64>, Vec<i64>) {
        let ints = |t: &Tensor<B, 2, Int>| t.to_data().convert::<i64>().to_vec::<i64>().unwrap();
        (ints(&batch.inputs), ints(&batch.targets))
    }

    #[test]
    fn batches_have_the_configured_shape_and_shifted_targets() {
        let tokens: Tokens = (0..500).collect::<Vec<u32>>().into();
        let loader = WindowLoader::<B>::fixed(windows(tokens, 3, 1), Default::default());
        let batches: Vec<_> = loader.iter().collect();
        assert_eq!(batches.len(), 3);
        for batch in &batches {
            assert_eq!(batch.inputs.dims(), [4, 8]);
            assert_eq!(batch.targets.dims(), [4, 8]);
            // Tokens are their own positions here, so every target is its input plus one.
            let (inputs, targets) = rows(batch);
            assert!(inputs.iter().zip(&targets).all(|(i, t)| t - i == 1));
        }
    }

    #[test]
    fn validation_repeats_and_training_moves_on() {
        let _turn = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        let tokens: Tokens = (0..500).collect::<Vec<u32>>().into();
        let fixed = WindowLoader::<B>::fixed(windows(tokens.clone(), 2, 1), Default::default());
        let first: Vec<_> = fixed.iter().map(|b| rows(&b)).collect();
        let second: Vec<_> = fixed.iter().map(|b| rows(&b)).collect();
        assert_eq!(first, second);

        let start = |epoch, batches| TrainingPosition { epoch, batches };
        let train = WindowLoader::<B>::training(
            windows(tokens.clone(), 2, 1),
            start(0, 0),
            Default::default(),
        );
        let epoch0: Vec<_> = train.iter().map(|b| rows(&b)).collect();
        let epoch1: Vec<_> = train.iter().map(|b| rows(&b)).collect();
        assert_ne!(epoch0, epoch1);

        // A loader resumed after one epoch draws what the uninterrupted one drew second.
        let resumed = WindowLoader::<B>::training(
            windows(tokens.clone(), 2, 1),
            start(1, 0),
            Default::default(),
        );
        let resumed1: Vec<_> = resumed.iter().map(|b| rows(&b)).collect();
        assert_eq!(resumed1, epoch1);

        // One resumed mid-epoch draws the rest of that epoch, then whole epochs again.
        let mid =
            WindowLoader::<B>::training(windows(tokens, 2, 1), start(0, 1), Default::default());
        let rest: Vec<_> = mid.iter().map(|b| rows(&b)).collect();
        assert_eq!(rest, epoch0[1..]);
        let next: Vec<_> = mid.iter().map(|b| rows(&b)).collect();
        assert_eq!(next, epoch1);
    }

    #[test]
    fn shards_share_out_every_pass_round_by_round() {
        let _turn = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        let tokens: Tokens = (0..500).collect::<Vec<u32>>().into();
        let start = TrainingPosition {
            epoch: 0,
            batches: 0,
        };
        let whole =
            WindowLoader::<B>::training(windows(tokens.clone(), 6, 3), start, Default::default());
        let split =
            WindowLoader::<B>::training(windows(tokens.clone(), 6, 3), start, Default::default());
        // As burn-train splits a loader among three devices.
        let shards: Vec<_> = (0..3).map(|i| split.slice(i * 8, (i + 1) * 8)).collect();
        for _epoch in 0..2 {
            let expected: Vec<_> = whole.iter().map(|b| rows(&b)).collect();
            let mut iters: Vec<_> = shards.iter().map(|s| s.iter()).collect();
            let mut rounds = Vec::new();
            for _round in 0..2 {
                for it in iters.iter_mut() {
                    rounds.push(rows(&it.next().unwrap()));
                }
            }
            assert!(iters.iter_mut().all(|it| it.next().is_none()));
            assert_eq!(rounds, expected);
        }
        // Resumed after one round (three batches) of the first pass: each shard skips one.
        let resumed = WindowLoader::<B>::training(
            windows(tokens.clone(), 6, 3),
            TrainingPosition {
                epoch: 0,
                batches: 3,
            },
            Default::default(),
        );
        let first = WindowLoader::<B>::training(windows(tokens, 6, 3), start, Default::default());
        let all: Vec<_> = first.iter().map(|b| rows(&b)).collect();
        let halves: Vec<_> = (0..3).map(|i| resumed.slice(i * 8, (i + 1) * 8)).collect();
        let rest: Vec<_> = halves
            .iter()
            .map(|h| rows(&h.iter().next().unwrap()))
            .collect();
        assert_eq!(rest, all[3..]);
    }

    #[test]
    fn dropout_randomness_is_a_function_of_the_batch_position() {
        let _turn = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        let tokens: Tokens = (0..500).collect::<Vec<u32>>().into();
        let draw_after = |start: TrainingPosition, skip_batches: usize| {
            let loader = WindowLoader::<B>::training(
                windows(tokens.clone(), 3, 9),
                start,
                Default::default(),
            );
            let mut batches = loader.iter();
            for _ in 0..=skip_batches {
                batches.next().unwrap();
            }
            Tensor::<B, 1>::random(
                [4],
                burn::tensor::Distribution::Default,
                &Default::default(),
            )
            .into_data()
            .to_vec::<f32>()
            .unwrap()
        };
        let uninterrupted = draw_after(TrainingPosition::default(), 2);
        let resumed = draw_after(
            TrainingPosition {
                epoch: 0,
                batches: 2,
            },
            0,
        );
        assert_eq!(uninterrupted, resumed);
        assert_ne!(uninterrupted, draw_after(TrainingPosition::default(), 1));
    }
}
