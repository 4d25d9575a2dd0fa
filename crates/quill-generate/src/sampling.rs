use rand::Rng;

/// How the next character is drawn from the model's scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleOptions {
    pub max_new_tokens: usize,
    /// Divides the logits before the softmax; 0 picks the most likely character (greedy).
    pub temperature: f64,
    /// Keep only the `k` most likely characters; `None` keeps all.
    pub top_k: Option<usize>,
    /// Nucleus sampling: keep the smallest set of most likely characters whose probabilities
    /// add up to at least `p` (after temperature and top-k); `None` keeps all.
    pub top_p: Option<f64>,
    pub seed: u64,
    /// Decode with the key/value cache (the default); `false` re-runs the whole window for
    /// every character, the reference the cache is tested against.
    pub use_cache: bool,
}

impl SampleOptions {
    /// Whether the options describe a sampler, or which flag does not (`--flag value: why`).
    pub fn validate(&self) -> Result<(), String> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(format!(
                "--temperature {} must be 0 (greedy) or positive",
                self.temperature
            ));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(format!("--top-p {p} must be in (0, 1]"));
        }
        if self.top_k == Some(0) {
            return Err("--top-k 0 would keep no character; use 1 or more".into());
        }
        Ok(())
    }
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 500,
            temperature: 0.8,
            top_k: None,
            top_p: None,
            seed: 1337,
            use_cache: true,
        }
    }
}

/// Picks an index from `logits` according to `options`, drawing from `rng`.
pub fn sample(logits: &[f32], options: &SampleOptions, rng: &mut impl Rng) -> usize {
    if options.temperature <= 0.0 {
        return argmax(logits);
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if let Some(k) = options.top_k {
        order.truncate(k.max(1));
    }
    let scaled: Vec<f64> = order
        .iter()
        .map(|&i| logits[i] as f64 / options.temperature)
        .collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut weights: Vec<f64> = scaled.iter().map(|s| (s - max).exp()).collect();
    if let Some(p) = options.top_p {
        let total: f64 = weights.iter().sum();
        let mut cumulative = 0.0;
        let keep = weights
            .iter()
            .position(|w| {
                cumulative += w / total;
                cumulative >= p
            })
            .map_or(weights.len(), |i| i + 1);
        weights.truncate(keep);
    }
    let total: f64 = weights.iter().sum();
    let mut draw = rng.random::<f64>() * total;
    for (&index, weight) in order.iter().zip(&weights) {
        if draw < *weight {
            return index;
        }
        draw -= weight;
    }
    order[weights.len() - 1]
}

/// The index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> usize {
    logits
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const LOGITS: [f32; 5] = [0.5, 2.0, -1.0, 1.9, 0.0];

    fn options(temperature: f64, top_k: Option<usize>) -> SampleOptions {
        SampleOptions {
            temperature,
            top_k,
            ..Default::default()
        }
    }

    #[test]
    fn temperature_zero_and_top_k_one_are_greedy() {
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..50 {
            assert_eq!(sample(&LOGITS, &options(0.0, None), &mut rng), 1);
            assert_eq!(sample(&LOGITS, &options(1.5, Some(1)), &mut rng), 1);
        }
    }

    #[test]
    fn top_k_keeps_only_the_k_best() {
        let mut rng = StdRng::seed_from_u64(1);
        let picks: Vec<usize> = (0..500)
            .map(|_| sample(&LOGITS, &options(1.0, Some(2)), &mut rng))
            .collect();
        assert!(picks.iter().all(|&p| p == 1 || p == 3));
        assert!(picks.contains(&1) && picks.contains(&3));
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // Probabilities 0.5, 0.3, 0.15, 0.05 (logits are their logs).
        let logits = [0.5f32, 0.3, 0.15, 0.05].map(f32::ln);
        let draws = |p: f64| {
            let mut rng = StdRng::seed_from_u64(3);
            let options = SampleOptions {
                top_p: Some(p),
                ..options(1.0, None)
            };
            let mut seen: Vec<usize> = (0..2000)
                .map(|_| sample(&logits, &options, &mut rng))
                .collect();
            seen.sort();
            seen.dedup();
            seen
        };
        assert_eq!(draws(0.5), [0]);
        assert_eq!(draws(0.51), [0, 1]);
        assert_eq!(draws(0.8), [0, 1]);
        assert_eq!(draws(0.81), [0, 1, 2]);
        assert_eq!(draws(1.0), [0, 1, 2, 3]);
        // A tiny p is greedy.
        assert_eq!(draws(1e-9), [0]);
    }

    #[test]
    fn sampling_follows_the_softmax() {
        let mut rng = StdRng::seed_from_u64(2);
        let n = 20000;
        let ones = (0..n)
            .filter(|_| sample(&[0.0, 2f32.ln()], &options(1.0, None), &mut rng) == 1)
            .count();
        let share = ones as f64 / n as f64;
        assert!((share - 2.0 / 3.0).abs() < 0.02, "share {share}");
    }
}
