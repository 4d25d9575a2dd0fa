//! Loading weights that may not fit: a file from another config (layers, width, vocabulary,
//! biases) is an error naming the first parameter that differs, never a panic or a model that
//! silently computes something else.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

use crate::gpt::{Gpt, GptRecord};

impl<B: Backend> Gpt<B> {
    /// `self` with the parameters of `record`, when they have this model's shapes.
    pub fn load_checked(self, record: GptRecord<B>) -> Result<Self, String> {
        // burn asserts (panics) on a layer-count mismatch, so that one is checked first.
        let (file_layers, layers) = (record.blocks.len(), self.num_layers());
        if file_layers != layers {
            return Err(format!(
                "the weights have {file_layers} layers, the config has model.n_layer = {layers}"
            ));
        }
        let expected = ParamShapes::of(&self);
        let loaded = self.load_record(record);
        let found = ParamShapes::of(&loaded);
        for (path, shape) in &expected {
            match found.iter().find(|(p, _)| p == path) {
                None => return Err(format!("the weights have no `{path}`")),
                Some((_, got)) if got != shape => {
                    return Err(format!(
                        "`{path}` is {got:?} in the weights, the config needs {shape:?}{}",
                        hint(path)
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(loaded)
    }
}

fn hint(path: &str) -> &'static str {
    if path.starts_with("token_embedding") {
        " (its rows are the vocabulary, its columns model.n_embd)"
    } else {
        ""
    }
}

/// Every float parameter of a module as (dotted path, shape).
struct ParamShapes {
    path: Vec<String>,
    shapes: Vec<(String, Vec<usize>)>,
}

impl ParamShapes {
    fn of<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, Vec<usize>)> {
        let mut visitor = Self {
            path: Vec::new(),
            shapes: Vec::new(),
        };
        module.visit(&mut visitor);
        visitor.shapes
    }
}

impl<B: Backend> ModuleVisitor<B> for ParamShapes {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.shapes
            .push((self.path.join("."), param.val().dims().to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelConfig;
    use burn::backend::NdArray;

    type B = NdArray;

    fn gpt(edit: impl FnOnce(&mut ModelConfig), vocab: usize) -> Gpt<B> {
        let mut config = ModelConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 16,
            block_size: 8,
            ..Default::default()
        };
        edit(&mut config);
        Gpt::new(&config, vocab, &Default::default())
    }

    #[test]
    fn matching_weights_load_and_mismatches_are_named() {
        let source = gpt(|_| {}, 10);
        let record = || source.clone().into_record();
        assert!(gpt(|_| {}, 10).load_checked(record()).is_ok());

        let err = gpt(|c| c.n_layer = 3, 10)
            .load_checked(record())
            .unwrap_err();
        assert!(
            err.contains("2 layers") && err.contains("n_layer = 3"),
            "{err}"
        );

        let err = gpt(|_| {}, 12).load_checked(record()).unwrap_err();
        assert!(
            err.contains("token_embedding.weight") && err.contains("[10, 16]"),
            "{err}"
        );
        assert!(
            err.contains("[12, 16]") && err.contains("vocabulary"),
            "{err}"
        );

        let err = gpt(|c| c.n_embd = 32, 10)
            .load_checked(record())
            .unwrap_err();
        assert!(
            err.contains("[10, 16]") && err.contains("[10, 32]"),
            "{err}"
        );

        let no_bias = gpt(|c| c.bias = false, 10);
        let err = gpt(|c| c.bias = true, 10)
            .load_checked(no_bias.into_record())
            .unwrap_err();
        assert!(err.starts_with("the weights have no `blocks.0."), "{err}");
    }
}
