//! quill's parameter paths and nanoGPT's state-dict keys, both ways.
//!
//! | quill                         | nanoGPT                              |
//! |-------------------------------|--------------------------------------|
//! | `token_embedding.weight`      | `transformer.wte.weight`             |
//! | `positional.learned.weight`   | `transformer.wpe.weight`             |
//! | `blocks.N.ln_attn.{gamma,beta}` | `transformer.h.N.ln_1.{weight,bias}` |
//! | `blocks.N.attn.qkv.*`         | `transformer.h.N.attn.c_attn.*`      |
//! | `blocks.N.attn.project.*`     | `transformer.h.N.attn.c_proj.*`      |
//! | `blocks.N.ln_mlp.{gamma,beta}`  | `transformer.h.N.ln_2.{weight,bias}` |
//! | `blocks.N.mlp.expand.*`       | `transformer.h.N.mlp.c_fc.*`         |
//! | `blocks.N.mlp.project.*`      | `transformer.h.N.mlp.c_proj.*`       |
//! | `ln_final.{gamma,beta}`       | `transformer.ln_f.{weight,bias}`     |
//! | `head.weight` (untied only)   | `lm_head.weight`                     |
//!
//! Linear weights are `[in, out]` in quill and `[out, in]` in PyTorch; burn-store's
//! PyTorch adapters transpose them and rename layer-norm gains and biases. A tied head has no
//! tensor of its own in quill; nanoGPT's `lm_head.weight` is then the embedding again.

use burn_store::KeyRemapper;

/// (quill prefix, nanoGPT prefix), as regex and replacement; `N` is the layer.
const PREFIXES: [(&str, &str, &str); 10] = [
    (r"token_embedding\.", "token_embedding.", "transformer.wte."),
    (
        r"positional\.learned\.",
        "positional.learned.",
        "transformer.wpe.",
    ),
    (
        r"blocks\.(\d+)\.ln_attn\.",
        "blocks.${1}.ln_attn.",
        "transformer.h.${1}.ln_1.",
    ),
    (
        r"blocks\.(\d+)\.attn\.qkv\.",
        "blocks.${1}.attn.qkv.",
        "transformer.h.${1}.attn.c_attn.",
    ),
    (
        r"blocks\.(\d+)\.attn\.project\.",
        "blocks.${1}.attn.project.",
        "transformer.h.${1}.attn.c_proj.",
    ),
    (
        r"blocks\.(\d+)\.ln_mlp\.",
        "blocks.${1}.ln_mlp.",
        "transformer.h.${1}.ln_2.",
    ),
    (
        r"blocks\.(\d+)\.mlp\.expand\.",
        "blocks.${1}.mlp.expand.",
        "transformer.h.${1}.mlp.c_fc.",
    ),
    (
        r"blocks\.(\d+)\.mlp\.project\.",
        "blocks.${1}.mlp.project.",
        "transformer.h.${1}.mlp.c_proj.",
    ),
    (r"ln_final\.", "ln_final.", "transformer.ln_f."),
    (r"head\.", "head.", "lm_head."),
];

/// quill paths to nanoGPT keys (applied after burn-store's Burn-to-PyTorch adapter).
pub fn to_nanogpt() -> KeyRemapper {
    let patterns = PREFIXES
        .iter()
        .map(|(quill, _, nanogpt)| (format!("^{quill}"), nanogpt.to_string()));
    KeyRemapper::from_pattern_iter(patterns).expect("the name patterns are valid regexes")
}

/// nanoGPT keys (also those of a `torch.compile`d model, prefixed `_orig_mod.`) to quill paths.
pub fn from_nanogpt() -> KeyRemapper {
    let mut patterns = vec![(r"^_orig_mod\.".to_string(), String::new())];
    for (_, quill, nanogpt) in PREFIXES {
        let from = regex_of(nanogpt);
        patterns.push((format!("^{from}"), quill.to_string()));
    }
    // Layer norms: PyTorch's weight/bias are burn's gamma/beta.
    let norms = r"^((?:blocks\.\d+\.ln_(?:attn|mlp))|ln_final)\.";
    patterns.push((format!("{norms}weight$"), "${1}.gamma".into()));
    patterns.push((format!("{norms}bias$"), "${1}.beta".into()));
    KeyRemapper::from_pattern_iter(patterns).expect("the name patterns are valid regexes")
}

/// A replacement string with `${1}` turned back into the pattern it captured.
fn regex_of(replacement: &str) -> String {
    replacement.replace('.', r"\.").replace("${1}", r"(\d+)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn_store::{ModuleSnapshot, TensorSnapshot};
    use quill_model::{Gpt, ModelConfig};

    fn names(remapper: &KeyRemapper, paths: &[&str]) -> Vec<String> {
        let snapshots: Vec<TensorSnapshot> = paths
            .iter()
            .map(|p| {
                let data = burn::tensor::TensorData::new(vec![0f32], [1]);
                TensorSnapshot::from_data(
                    data,
                    p.split('.').map(String::from).collect(),
                    vec![],
                    burn::module::ParamId::new(),
                )
            })
            .collect();
        let (mapped, _) = remapper.remap(snapshots);
        mapped.iter().map(|s| s.full_path()).collect()
    }

    #[test]
    fn every_parameter_has_a_nanogpt_name_and_back() {
        let config = ModelConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            block_size: 4,
            bias: true,
            tie_weights: false,
            ..Default::default()
        };
        let gpt = Gpt::<NdArray>::new(&config, 5, &Default::default());
        let quill: Vec<String> = gpt
            .collect(None, None, false)
            .iter()
            .map(|s| s.full_path())
            .collect();
        assert_eq!(quill.len(), 2 + 2 * 12 + 2 + 1, "{quill:?}");
        let quill_refs: Vec<&str> = quill.iter().map(String::as_str).collect();
        let nanogpt = names(&to_nanogpt(), &quill_refs);
        for name in &nanogpt {
            assert!(
                name.starts_with("transformer.") || name == "lm_head.weight",
                "{name}"
            );
        }
        assert!(nanogpt.contains(&"transformer.h.1.attn.c_attn.bias".to_string()));
        assert!(nanogpt.contains(&"transformer.h.0.mlp.c_fc.weight".to_string()));

        // Back from PyTorch's names (layer norms as weight/bias), compiled or not.
        let pytorch: Vec<String> = nanogpt
            .iter()
            .map(|n| n.replace(".gamma", ".weight").replace(".beta", ".bias"))
            .map(|n| format!("_orig_mod.{n}"))
            .collect();
        let pytorch_refs: Vec<&str> = pytorch.iter().map(String::as_str).collect();
        let mut back = names(&from_nanogpt(), &pytorch_refs);
        let mut expected = quill.clone();
        back.sort();
        expected.sort();
        assert_eq!(back, expected);
    }
}
