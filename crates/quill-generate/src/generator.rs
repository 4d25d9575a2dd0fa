//! The decoding loop, with or without the key/value cache.
//!
//! The model reads at most `block_size` characters. Both modes use one windowing rule so that
//! they compute the same function: the window starts as the prompt's last `block_size`
//! characters and grows with each new one; when it would pass `block_size`, it slides to keep
//! only the newest `block_size / 2` characters. With learned positions a slide changes every
//! position, so the cache is emptied and refilled from the kept half in one pass (a prefill);
//! between slides each character costs one position's work. Without the cache, the whole
//! window is run for every character.

use burn::prelude::*;
use quill_data::{DataError, Utf8Stream};
use quill_model::KvCache;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::loaded::LoadedRun;
use crate::sampling::{SampleOptions, sample};

/// The state of one decoding: the context so far, where the model's window starts in it, and
/// the cache of that window's keys and values.
pub struct Decoder<'a, B: Backend> {
    run: &'a LoadedRun<B>,
    context: Vec<u32>,
    window_start: usize,
    cache: Option<KvCache<B>>,
    device: B::Device,
}

impl<'a, B: Backend> Decoder<'a, B> {
    pub fn new(run: &'a LoadedRun<B>, prompt: Vec<u32>, use_cache: bool) -> Self {
        let block_size = run.config.model.block_size;
        Self {
            window_start: prompt.len().saturating_sub(block_size),
            context: prompt,
            run,
            cache: use_cache.then(KvCache::new),
            device: run.model.devices()[0].clone(),
        }
    }

    /// The model's logits for the character after the context.
    pub fn next_logits(&mut self) -> Vec<f32> {
        let window = &self.context[self.window_start..];
        let (logits, last) = match &mut self.cache {
            None => {
                // The window padded to the full context, so every call runs the same shapes
                // (GPU kernels are compiled per shape); causal attention keeps the padding
                // from reaching the window's positions.
                let block_size = self.run.config.model.block_size;
                let mut padded = window.to_vec();
                padded.resize(block_size, 0);
                let logits = self.run.model.forward(tokens(&padded, &self.device));
                (logits, window.len() - 1)
            }
            Some(cache) => {
                let new = &window[cache.len()..];
                let logits = self
                    .run
                    .model
                    .forward_cached(tokens(new, &self.device), cache);
                let last = logits.dims()[1] - 1;
                (logits, last)
            }
        };
        let vocab = logits.dims()[2];
        logits
            .slice([0..1, last..last + 1, 0..vocab])
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 logits")
    }

    /// Appends a character, sliding the window when it is full.
    pub fn push(&mut self, token: u32) {
        self.context.push(token);
        let block_size = self.run.config.model.block_size;
        if self.context.len() - self.window_start > block_size {
            self.window_start = self.context.len() - (block_size / 2).max(1);
            if let Some(cache) = &mut self.cache {
                cache.clear();
            }
        }
    }
}

fn tokens<B: Backend>(ids: &[u32], device: &B::Device) -> Tensor<B, 2, Int> {
    let ids: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
    let len = ids.len();
    Tensor::from_data(TensorData::new(ids, [1, len]), device)
}

/// Continues `prompt` by `options.max_new_tokens` tokens, calling `on_char` with each new
/// character as soon as it is complete (a sub-word token may end inside a UTF-8 character,
/// which then waits for the next token). Returns the continuation (without the prompt). An
/// empty prompt starts from a newline, as nanoGPT's sampler does.
pub fn generate<B: Backend>(
    run: &LoadedRun<B>,
    prompt: &str,
    options: &SampleOptions,
    mut on_char: impl FnMut(char),
) -> Result<String, DataError> {
    let prompt = if prompt.is_empty() {
        let newline = run.tokenizer.encode("\n").ok();
        vec![newline.and_then(|ids| ids.first().copied()).unwrap_or(0)]
    } else {
        run.tokenizer.encode(prompt)?
    };
    let mut decoder = Decoder::new(run, prompt, options.use_cache);
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut out = String::new();
    let mut text = Utf8Stream::default();
    for _ in 0..options.max_new_tokens {
        let next = sample(&decoder.next_logits(), options, &mut rng) as u32;
        decoder.push(next);
        let piece = text.push(&run.tokenizer, next);
        piece.chars().for_each(&mut on_char);
        out.push_str(&piece);
    }
    let rest = text.finish();
    rest.chars().for_each(&mut on_char);
    out.push_str(&rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use quill_data::{Tokenizer, Vocab};
    use quill_model::{Gpt, ModelConfig, Positional};
    use quill_train::RunConfig;

    fn run(positional: Positional) -> LoadedRun<NdArray> {
        let device = Default::default();
        <NdArray as Backend>::seed(&device, 3);
        let config = RunConfig {
            model: ModelConfig {
                n_layer: 2,
                n_head: 2,
                n_embd: 8,
                block_size: 6,
                dropout: 0.0,
                positional,
                ..ModelConfig::default()
            },
            ..RunConfig::default()
        };
        let tokenizer = Tokenizer::Char(Vocab::from_text("abcdefgh \n"));
        let model = Gpt::new(&config.model, tokenizer.len(), &device);
        LoadedRun {
            config,
            tokenizer,
            model,
        }
    }

    fn options(seed: u64, temperature: f64, use_cache: bool) -> SampleOptions {
        SampleOptions {
            max_new_tokens: 20,
            temperature,
            seed,
            use_cache,
            ..SampleOptions::default()
        }
    }

    #[test]
    fn same_seed_same_text_and_greedy_is_seed_free() {
        let run = run(Positional::Learned);
        let sampled = |seed, temperature| {
            generate(&run, "abc", &options(seed, temperature, true), |_| {}).unwrap()
        };
        assert_eq!(sampled(7, 1.0), sampled(7, 1.0));
        assert_eq!(sampled(7, 1.0).chars().count(), 20);
        assert_ne!(sampled(7, 1.0), sampled(8, 1.0));
        assert_eq!(sampled(1, 0.0), sampled(2, 0.0));
    }

    #[test]
    fn cache_gives_the_same_logits_and_text_across_window_slides() {
        // block_size 6 and 20 new characters: the window slides several times.
        for positional in [Positional::Learned, Positional::Sinusoidal] {
            let run = run(positional);
            let prompt = run.tokenizer.encode("abcdefgh").unwrap();
            let mut cached = Decoder::new(&run, prompt.clone(), true);
            let mut uncached = Decoder::new(&run, prompt, false);
            let mut slides = 0;
            for step in 0..20 {
                let a = cached.next_logits();
                let b = uncached.next_logits();
                for (x, y) in a.iter().zip(&b) {
                    assert!(
                        (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                        "step {step}: {a:?} vs {b:?}"
                    );
                }
                let next = (step * 7 % run.tokenizer.len()) as u32;
                let before = cached.window_start;
                cached.push(next);
                uncached.push(next);
                if cached.window_start != before {
                    slides += 1;
                }
            }
            assert!(slides >= 3, "only {slides} slides");
            for seed in [1, 2] {
                assert_eq!(
                    generate(&run, "abc", &options(seed, 1.0, true), |_| {}).unwrap(),
                    generate(&run, "abc", &options(seed, 1.0, false), |_| {}).unwrap()
                );
            }
        }
    }

    #[test]
    fn streamed_characters_are_the_result() {
        let run = run(Positional::Learned);
        let mut streamed = String::new();
        let out = generate(&run, "", &SampleOptions::default(), |c| streamed.push(c)).unwrap();
        assert_eq!(streamed, out);
        assert_eq!(out.chars().count(), 500);
    }

    #[test]
    fn prompt_outside_the_vocabulary_is_named() {
        let run = run(Positional::Learned);
        let err = generate(&run, "abz!", &SampleOptions::default(), |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "characters not in the vocabulary: '!', 'z'"
        );
    }
}
