//! nanoGPT checkpoints written by tests/fixtures/nanogpt/make_fixture.py (PyTorch) import into
//! quill and give PyTorch's logits; exported safetensors files import back bit for bit.

use std::path::PathBuf;

use burn::backend::NdArray;
use burn::prelude::*;
use burn_store::ModuleSnapshot;
use quill_data::{Tokenizer, Vocab};
use quill_interop::{nanogpt, safetensors};
use quill_model::Gpt;
use serde::Deserialize;

type B = NdArray;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/nanogpt")
}

fn corpus_vocab() -> Vocab {
    Vocab::from_text(&std::fs::read_to_string(fixtures().join("corpus.txt")).unwrap())
}

fn char_tokenizer() -> Tokenizer {
    Tokenizer::Char(corpus_vocab())
}

#[derive(Deserialize)]
struct Recorded {
    input: Vec<i64>,
    shape: [usize; 3],
    logits: Vec<f32>,
}

fn logits_of(gpt: &Gpt<B>, input: &[i64]) -> Vec<f32> {
    let tokens = Tensor::<B, 2, Int>::from_data(
        TensorData::new(input.to_vec(), [1, input.len()]),
        &Default::default(),
    );
    gpt.forward(tokens).into_data().to_vec::<f32>().unwrap()
}

#[test]
fn nanogpt_checkpoints_give_pytorchs_logits() {
    for name in ["tiny_bias_compiled", "tiny_nobias"] {
        let ckpt = fixtures().join(format!("{name}.pt"));
        let recorded: Recorded = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("{name}.logits.json"))).unwrap(),
        )
        .unwrap();
        let (config, gpt) =
            nanogpt::import::<B>(&ckpt, &char_tokenizer(), &Default::default()).unwrap();
        assert_eq!(config.bias, name.contains("_bias"));
        assert_eq!(recorded.shape[2], corpus_vocab().len());
        let ours = logits_of(&gpt, &recorded.input);
        assert_eq!(ours.len(), recorded.logits.len());
        let worst = ours
            .iter()
            .zip(&recorded.logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{name}: largest logit difference {worst:e}");
        assert!(worst <= 1e-5, "{name}: largest logit difference {worst}");
    }
}

/// What make_fixture.py kept of a GPT-2-BPE checkpoint's logits: the last position's, for
/// some ids.
#[derive(Deserialize)]
struct RecordedRow {
    input: Vec<i64>,
    ids: Vec<usize>,
    logits: Vec<f32>,
}

#[test]
fn a_gpt2_checkpoint_with_a_padded_vocabulary_gives_pytorchs_logits_for_gpt2_s_tokens() {
    let ckpt = fixtures().join("tiny_gpt2.pt");
    assert_eq!(nanogpt::read_args(&ckpt).unwrap().vocab_size, 50304);
    let recorded: RecordedRow = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("tiny_gpt2.logits.json")).unwrap(),
    )
    .unwrap();
    let (_, gpt) = nanogpt::import::<B>(&ckpt, &Tokenizer::gpt2(), &Default::default()).unwrap();
    let ours = logits_of(&gpt, &recorded.input);
    // Only GPT-2's 50257 tokens are left, at every position.
    assert_eq!(ours.len(), recorded.input.len() * 50257);
    let last = &ours[ours.len() - 50257..];
    for (id, expected) in recorded.ids.iter().zip(&recorded.logits) {
        assert!(
            (last[*id] - expected).abs() <= 1e-5,
            "id {id}: {} vs {expected}",
            last[*id]
        );
    }
    // A character vocabulary never pads.
    let err = nanogpt::import::<B>(&ckpt, &char_tokenizer(), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("vocabulary of 50304 tokens"), "{err}");
}

#[test]
fn a_corpus_with_another_vocabulary_is_refused() {
    let vocab = Tokenizer::Char(Vocab::from_text("only a few letters"));
    let err = nanogpt::import::<B>(
        &fixtures().join("tiny_nobias.pt"),
        &vocab,
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("vocabulary of 52 tokens") && err.contains("distinct characters"),
        "{err}"
    );
    let err = nanogpt::import::<B>(
        &fixtures().join("corpus.txt"),
        &char_tokenizer(),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot read `model_args`"), "{err}");
}

#[test]
fn export_then_import_is_bit_exact() {
    let (config, gpt) = nanogpt::import::<B>(
        &fixtures().join("tiny_bias_compiled.pt"),
        &char_tokenizer(),
        &Default::default(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.safetensors");
    safetensors::export(&gpt, &config, &Tokenizer::Char(corpus_vocab()), &file).unwrap();
    let (config_back, vocab_back, back) =
        safetensors::import::<B>(&file, &Default::default()).unwrap();
    assert_eq!(config_back, config);
    assert_eq!(vocab_back, Tokenizer::Char(corpus_vocab()));
    let params = |g: &Gpt<B>| -> Vec<(String, Vec<u8>)> {
        g.collect(None, None, false)
            .iter()
            .map(|s| (s.full_path(), s.to_data().unwrap().bytes.to_vec()))
            .collect()
    };
    assert_eq!(params(&back), params(&gpt));

    // The file speaks nanoGPT's names, in PyTorch's [out, in] layout.
    let bytes = std::fs::read(&file).unwrap();
    let tensors = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let qkv = tensors
        .tensor("transformer.h.0.attn.c_attn.weight")
        .unwrap();
    assert_eq!(qkv.shape(), [48, 16]);
    assert!(tensors.tensor("transformer.h.1.ln_2.bias").is_ok());

    // Never over an existing file.
    let err =
        safetensors::export(&gpt, &config, &Tokenizer::Char(corpus_vocab()), &file).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}
