//! The model's optimizer: AdamW on every parameter ([`MatrixDecayAdamW`]), or Muon on the
//! blocks' weight matrices and AdamW on the rest (`optimizer.kind = "muon"`; Keller Jordan's
//! Muon, modded-nanogpt).
//!
//! burn 0.21 has Muon (`burn::optim::Muon`, 2-D tensors only) but no parameter groups, so
//! [`ModelOptimizer`] holds one burn adaptor per group and hands each the gradients of its
//! parameters: the blocks' 2-D parameters (attention's `qkv` and projection, the feed-forward
//! matrices) to Muon, everything else (embeddings, head, norms, biases) to AdamW. Both read the
//! gradient-clipping scale of [`step_clipped`](crate::optimizer::step_clipped); gradient
//! accumulation and the devices' sum happen before the step, so they are unchanged.
//!
//! burn's Muon scales its rate by `max(1, A/B)^0.5` of a `[A, B]` tensor, written for
//! PyTorch's `[out, in]` weights; burn's own `Linear` weights are `[in, out]`, where that would
//! give the feed-forward's expansion 1 and its projection 2, the reverse of Keller Jordan's
//! `max(1, out/in)^0.5`. [`KellerMuon`] therefore steps the transpose (Newton-Schulz
//! orthogonalization commutes with it; the momentum is kept transposed).

use std::collections::HashSet;

use hashbrown::HashMap;

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::record::AdaptorRecord;
use burn::optim::{
    GradientsParams, LearningRate, MultiGradientsParams, Muon, MuonConfig as BurnMuonConfig,
    MuonState, Optimizer, SimpleOptimizer,
};
use burn::prelude::*;
use burn::record::{PrecisionSettings, Record};
use burn::tensor::backend::AutodiffBackend;
use quill_backend::Kernels;
use serde::{Deserialize, Serialize};

use crate::config::{OptimizerConfig, OptimizerKind};
use crate::optimizer::{GradientScale, MatrixDecayAdamW};

/// The optimizer of module `M` that `optimizer.kind` names.
#[derive(Clone)]
pub struct ModelOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    adamw: OptimizerAdaptor<MatrixDecayAdamW, M, B>,
    muon: Option<MuonGroup<M, B>>,
}

#[derive(Clone)]
struct MuonGroup<M: AutodiffModule<B>, B: AutodiffBackend> {
    adaptor: OptimizerAdaptor<KellerMuon<B::InnerBackend>, M, B>,
    /// `optimizer.muon.lr / optimizer.lr`: the schedule's rate is AdamW's.
    lr_ratio: f64,
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> ModelOptimizer<M, B> {
    pub fn init(config: &OptimizerConfig, kernels: Kernels) -> Self {
        let muon = (config.kind == OptimizerKind::Muon).then(|| {
            let muon = &config.muon;
            let burns = BurnMuonConfig::new()
                .with_momentum(MomentumConfig {
                    momentum: muon.momentum,
                    dampening: 0.0,
                    nesterov: true,
                })
                .with_ns_steps(muon.ns_steps)
                .with_weight_decay(
                    (muon.weight_decay > 0.0)
                        .then(|| WeightDecayConfig::new(muon.weight_decay as f32)),
                );
            MuonGroup {
                adaptor: OptimizerAdaptor::from(KellerMuon {
                    inner: burns.build(),
                }),
                lr_ratio: muon.lr / config.lr,
            }
        });
        Self {
            adamw: MatrixDecayAdamW::init::<B, M>(config, kernels),
            muon,
        }
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Optimizer<M, B> for ModelOptimizer<M, B> {
    type Record = ModelOptimizerRecord<B>;

    fn step(&mut self, lr: LearningRate, module: M, mut grads: GradientsParams) -> M {
        let Some(muon) = &mut self.muon else {
            return self.adamw.step(lr, module, grads);
        };
        let matrices = take::<B>(&mut grads, &block_matrices::<B, M>(&module));
        let module = self.adamw.step(lr, module, grads);
        muon.adaptor.step(lr * muon.lr_ratio, module, matrices)
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, grads: MultiGradientsParams) -> M {
        let Some(muon) = &mut self.muon else {
            return self.adamw.step_multi(lr, module, grads);
        };
        let ids = block_matrices::<B, M>(&module);
        let mut rest = grads;
        let matrices = MultiGradientsParams {
            grads: rest
                .grads
                .iter_mut()
                .map(|(grads, device)| (take::<B>(grads, &ids), *device))
                .collect(),
        };
        let module = self.adamw.step_multi(lr, module, rest);
        muon.adaptor
            .step_multi(lr * muon.lr_ratio, module, matrices)
    }

    fn to_record(&self) -> Self::Record {
        ModelOptimizerRecord {
            adamw: self.adamw.to_record(),
            muon: self.muon.as_ref().map(|muon| muon.adaptor.to_record()),
        }
    }

    fn load_record(mut self, record: Self::Record) -> Self {
        self.adamw = self.adamw.load_record(record.adamw);
        if let (Some(muon), Some(states)) = (&mut self.muon, record.muon) {
            muon.adaptor = muon.adaptor.clone().load_record(states);
        }
        self
    }
}

/// The ids of the 2-D parameters inside the module's `blocks` (the Transformer blocks' weight
/// matrices), which Muon steps.
pub fn block_matrices<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M) -> HashSet<ParamId> {
    let mut visitor = BlockMatrices {
        path: Vec::new(),
        ids: HashSet::new(),
    };
    module.visit(&mut visitor);
    visitor.ids
}

struct BlockMatrices {
    path: Vec<String>,
    ids: HashSet<ParamId>,
}

impl<B: Backend> ModuleVisitor<B> for BlockMatrices {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if D == 2 && self.path.iter().any(|part| part == "blocks") {
            self.ids.insert(param.id);
        }
    }
}

/// The gradients of `ids`, moved out of `grads`.
fn take<B: AutodiffBackend>(
    grads: &mut GradientsParams,
    ids: &HashSet<ParamId>,
) -> GradientsParams {
    let mut taken = GradientsParams::new();
    for id in ids {
        if let Some(grad) = grads.remove::<B::InnerBackend, 2>(*id) {
            taken.register::<B::InnerBackend, 2>(*id, grad);
        }
    }
    taken
}

/// burn's Muon with Keller Jordan's shape scale on burn's `[in, out]` weights, and the gradient
/// clipping's scale applied to the gradient first.
#[derive(Clone)]
pub struct KellerMuon<B: Backend> {
    inner: Muon<B>,
}

impl<B: Backend> SimpleOptimizer<B> for KellerMuon<B> {
    type State<const D: usize> = MuonState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let grad = match GradientScale::get::<B>() {
            Some(scale) => grad * scale.reshape([1; D]),
            None => grad,
        };
        // Muon takes 2-D tensors only (burn's asserts it); [in, out] → [out, in] and back.
        let (tensor, state) =
            self.inner
                .step(lr, tensor.swap_dims(0, 1), grad.swap_dims(0, 1), state);
        (tensor.swap_dims(0, 1), state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <Muon<B> as SimpleOptimizer<B>>::to_device(state, device)
    }
}

/// burn's adaptor records (hashbrown's map, as burn's).
type AdamWRecord<B> = HashMap<ParamId, AdaptorRecord<MatrixDecayAdamW, B>>;
type MuonRecord<B> =
    HashMap<ParamId, AdaptorRecord<KellerMuon<<B as AutodiffBackend>::InnerBackend>, B>>;

/// The optimizer's state: AdamW's, and Muon's where it runs.
pub struct ModelOptimizerRecord<B: AutodiffBackend> {
    pub adamw: AdamWRecord<B>,
    pub muon: Option<MuonRecord<B>>,
}

impl<B: AutodiffBackend> ModelOptimizerRecord<B> {
    /// The optimizer kind whose state this is.
    pub fn kind(&self) -> OptimizerKind {
        match self.muon {
            Some(_) => OptimizerKind::Muon,
            None => OptimizerKind::Adamw,
        }
    }
}

/// On disk, an AdamW-only state is AdamW's map alone, as every checkpoint written before Muon
/// existed holds it (so those resume unchanged); a Muon state is `{ adamw, muon }`.
#[derive(Serialize, Deserialize, Clone)]
#[serde(untagged)]
pub enum ModelOptimizerItem<A, M> {
    Muon { adamw: A, muon: M },
    Adamw(A),
}

impl<B: AutodiffBackend> Record<B> for ModelOptimizerRecord<B> {
    type Item<S: PrecisionSettings> = ModelOptimizerItem<
        <AdamWRecord<B> as Record<B>>::Item<S>,
        <MuonRecord<B> as Record<B>>::Item<S>,
    >;

    fn into_item<S: PrecisionSettings>(self) -> Self::Item<S> {
        let adamw = self.adamw.into_item();
        match self.muon {
            Some(muon) => ModelOptimizerItem::Muon {
                adamw,
                muon: muon.into_item(),
            },
            None => ModelOptimizerItem::Adamw(adamw),
        }
    }

    fn from_item<S: PrecisionSettings>(item: Self::Item<S>, device: &B::Device) -> Self {
        match item {
            ModelOptimizerItem::Muon { adamw, muon } => Self {
                adamw: Record::<B>::from_item::<S>(adamw, device),
                muon: Some(Record::<B>::from_item::<S>(muon, device)),
            },
            ModelOptimizerItem::Adamw(adamw) => Self {
                adamw: Record::<B>::from_item::<S>(adamw, device),
                muon: None,
            },
        }
    }
}

#[cfg(test)]
mod tests;
