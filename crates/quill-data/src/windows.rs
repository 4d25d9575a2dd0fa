//! Windows of `block_size` tokens: the model reads `tokens[o..o + T]` and learns to predict
//! `tokens[o + 1..o + T + 1]`, the same window shifted by one character.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Window offsets drawn uniformly (with replacement, as nanoGPT's `get_batch`) from the
/// `len - block_size` valid starts, one batch at a time: a pass of any length holds no table
/// of offsets. The draws depend only on `(seed, stream)`, so batch `k` of a run is the same
/// whether the run was interrupted or not.
#[derive(Debug, Clone)]
pub struct Offsets {
    rng: StdRng,
    starts: usize,
}

impl Offsets {
    pub fn new(seed: u64, stream: u64, len: usize, block_size: usize) -> Self {
        Self {
            rng: StdRng::seed_from_u64(mix(seed, stream)),
            starts: len - block_size,
        }
    }

    /// The next `count` offsets.
    pub fn take(&mut self, count: usize) -> Vec<usize> {
        (0..count)
            .map(|_| self.rng.random_range(0..self.starts))
            .collect()
    }

    /// Draws and drops `count` offsets (the batches a resumed pass already trained on).
    pub fn skip(&mut self, count: usize) {
        for _ in 0..count {
            self.rng.random_range(0..self.starts);
        }
    }
}

/// Combines a seed and a stream number into one well-spread seed (SplitMix64's finalizer).
pub fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_in_range_and_reproducible() {
        let a = Offsets::new(7, 3, 100, 10).take(1000);
        assert_eq!(a, Offsets::new(7, 3, 100, 10).take(1000));
        assert_ne!(a, Offsets::new(7, 4, 100, 10).take(1000));
        assert!(a.iter().all(|&o| o + 10 < 100));
        assert!(a.contains(&0) && a.contains(&89));
        // Drawn in pieces or skipped, the sequence is the same.
        let mut pieces = Offsets::new(7, 3, 100, 10);
        pieces.skip(300);
        assert_eq!(pieces.take(700), a[300..]);
    }
}
