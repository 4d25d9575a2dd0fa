use burn::prelude::*;
use quill_data::DataError;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::loaded::LoadedRun;
use crate::sampling::{SampleOptions, sample};

/// Continues `prompt` by `options.max_new_tokens` characters, calling `on_char` with each new
/// character as soon as it is chosen. Returns the continuation (without the prompt).
///
/// The model sees at most `block_size` characters: older context is cropped from the left.
/// An empty prompt starts from a newline, as nanoGPT's sampler does.
pub fn generate<B: Backend>(
    run: &LoadedRun<B>,
    prompt: &str,
    options: &SampleOptions,
    mut on_char: impl FnMut(char),
) -> Result<String, DataError> {
    let mut context = if prompt.is_empty() {
        vec![run.vocab.encode("\n").map(|ids| ids[0]).unwrap_or(0)]
    } else {
        run.vocab.encode(prompt)?
    };
    let block_size = run.config.model.block_size;
    let device = run.model.devices()[0].clone();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut out = String::new();
    for _ in 0..options.max_new_tokens {
        let window = &context[context.len().saturating_sub(block_size)..];
        let ids: Vec<i32> = window.iter().map(|&t| t as i32).collect();
        let input =
            Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, window.len()]), &device);
        let logits = run.model.forward(input);
        let [_, seq, vocab] = logits.dims();
        let last = logits
            .slice([0..1, seq - 1..seq, 0..vocab])
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 logits");
        let next = sample(&last, options, &mut rng) as u32;
        context.push(next);
        let c = run.vocab.decode(&[next]);
        c.chars().for_each(&mut on_char);
        out.push_str(&c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use quill_data::Vocab;
    use quill_model::{Gpt, ModelConfig};
    use quill_train::RunConfig;

    fn run() -> LoadedRun<NdArray> {
        let device = Default::default();
        <NdArray as Backend>::seed(&device, 3);
        let config = RunConfig {
            model: ModelConfig {
                n_layer: 1,
                n_head: 2,
                n_embd: 8,
                block_size: 4,
                dropout: 0.0,
                ..ModelConfig::default()
            },
            ..RunConfig::default()
        };
        let vocab = Vocab::from_text("abcdefgh \n");
        let model = Gpt::new(&config.model, vocab.len(), &device);
        LoadedRun {
            config,
            vocab,
            model,
        }
    }

    #[test]
    fn same_seed_same_text_and_greedy_is_seed_free() {
        let run = run();
        let sampled = |seed, temperature| {
            let options = SampleOptions {
                max_new_tokens: 12,
                temperature,
                top_k: None,
                seed,
            };
            generate(&run, "abc", &options, |_| {}).unwrap()
        };
        assert_eq!(sampled(7, 1.0), sampled(7, 1.0));
        assert_eq!(sampled(7, 1.0).chars().count(), 12);
        assert_eq!(sampled(1, 0.0), sampled(2, 0.0));
        // Past block_size (4) the window slides instead of failing.
        assert!(sampled(9, 1.0).chars().all(|c| run.vocab.contains(c)));
    }

    #[test]
    fn streamed_characters_are_the_result() {
        let run = run();
        let mut streamed = String::new();
        let out = generate(&run, "", &SampleOptions::default(), |c| streamed.push(c)).unwrap();
        assert_eq!(streamed, out);
    }

    #[test]
    fn prompt_outside_the_vocabulary_is_named() {
        let run = run();
        let err = generate(&run, "abz!", &SampleOptions::default(), |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "characters not in the vocabulary: '!', 'z'"
        );
    }
}
