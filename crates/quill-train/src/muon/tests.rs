use super::*;
use burn::backend::{Autodiff, NdArray};
use burn::nn::{Linear, LinearConfig};
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use quill_model::{Activation, Gpt, ModelConfig};

use crate::config::MuonConfig;
use crate::optimizer::step_clipped;
use crate::step::{Trained, Trainee};

type A = Autodiff<NdArray>;

fn muon_config() -> OptimizerConfig {
    OptimizerConfig {
        kind: OptimizerKind::Muon,
        muon: MuonConfig {
            lr: 0.05,
            ..MuonConfig::default()
        },
        ..OptimizerConfig::default()
    }
}

fn grads_of<M: AutodiffModule<A>>(module: &M, loss: Tensor<A, 1>) -> GradientsParams {
    GradientsParams::from_grads(loss.backward(), module)
}

#[test]
fn keller_muon_scales_burns_in_out_weights_by_max_1_out_over_in() {
    // A 4 → 16 layer: burn's weight is [4, 16]. Keller Jordan's scale is max(1, 16/4)^0.5 = 2;
    // burn's Muon, reading [4, 16] as [out, in], would use max(1, 4/16)^0.5 = 1.
    let device = Default::default();
    let layer: Linear<NdArray> = LinearConfig::new(4, 16).init(&device);
    let weight = layer.weight.val();
    let grad = Tensor::<NdArray, 2>::random([4, 16], burn::tensor::Distribution::Default, &device);
    let config = BurnMuonConfig::new();
    let keller = KellerMuon {
        inner: config.build(),
    };
    let (ours, _) = keller.step(0.01, weight.clone(), grad.clone(), None);
    let (burns, _) = config
        .build::<NdArray>()
        .step(0.01, weight.clone(), grad, None);
    let ours = (weight.clone() - ours).into_data().to_vec::<f32>().unwrap();
    let burns = (weight - burns).into_data().to_vec::<f32>().unwrap();
    for (o, b) in ours.iter().zip(&burns) {
        assert!((o - 2.0 * b).abs() < 1e-6, "{o} vs 2 × {b}");
    }
}

fn tiny_trainee(activation: Activation) -> Trained<A> {
    let config = ModelConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        block_size: 8,
        dropout: 0.0,
        bias: true,
        activation,
        ..ModelConfig::default()
    };
    Trainee::detached(Gpt::new(&config, 11, &Default::default()), 1.0, 1)
}

fn loss_of(trainee: &Trained<A>) -> Tensor<A, 1> {
    let tokens = Tensor::<A, 2, Int>::from_ints([[1, 2, 3, 4, 5, 6]], &Default::default());
    let targets = Tensor::<A, 2, Int>::from_ints([[2, 3, 4, 5, 6, 7]], &Default::default());
    trainee.gpt.forward_loss(tokens, targets).0
}

#[test]
fn muon_takes_the_blocks_matrices_and_nothing_else() {
    // Two blocks × (qkv, attention projection, expansion, projection); SwiGLU adds its gate.
    let trainee = tiny_trainee(Activation::Gelu);
    assert_eq!(block_matrices::<A, _>(&trainee).len(), 8);
    assert_eq!(
        block_matrices::<A, _>(&tiny_trainee(Activation::Swiglu)).len(),
        10
    );
    // All of them 2-D: the visitor counts the model's 2-D parameters minus the embeddings.
    struct Matrices(usize);
    impl ModuleVisitor<A> for Matrices {
        fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<A, D>>) {
            self.0 += usize::from(D == 2);
        }
    }
    let mut all = Matrices(0);
    trainee.visit(&mut all);
    // Token and position embeddings; the head is tied.
    assert_eq!(all.0, 8 + 2);
}

/// Every 2-D parameter's values, in the module's visiting order.
fn matrices(trainee: &Trained<A>) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor<A> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
            if D == 2 {
                let values = param.val().inner().into_data().to_vec().unwrap();
                self.0.push(values);
            }
        }
    }
    let mut collect = Collect(Vec::new());
    trainee.visit(&mut collect);
    collect.0
}

#[test]
fn muon_steps_the_matrices_and_adamw_the_rest_with_clipping_on_both() {
    let trainee = tiny_trainee(Activation::Gelu);
    let _ = loss_of(&trainee); // parameters are initialized on first use
    let mut adamw =
        ModelOptimizer::<Trained<A>, A>::init(&OptimizerConfig::default(), Kernels::QUILL);
    let mut muon = ModelOptimizer::<Trained<A>, A>::init(&muon_config(), Kernels::QUILL);
    let grads = grads_of(&trainee, loss_of(&trainee));
    let by_adamw = step_clipped(
        &mut adamw,
        1e-3,
        trainee.clone(),
        grads,
        1.0,
        &Kernels::QUILL,
    );
    let grads = grads_of(&trainee, loss_of(&trainee));
    let by_muon = step_clipped(
        &mut muon,
        1e-3,
        trainee.clone(),
        grads,
        1.0,
        &Kernels::QUILL,
    );
    let (before, a, m) = (matrices(&trainee), matrices(&by_adamw), matrices(&by_muon));
    // Visit order: the token embedding first, the position embedding second, then the blocks.
    for i in 0..2 {
        assert_eq!(a[i], m[i], "embedding {i}: AdamW in both");
    }
    for i in 2..a.len() {
        assert_ne!(a[i], m[i], "matrix {i}: Muon's step, not AdamW's");
        assert_ne!(m[i], before[i], "matrix {i} moved");
    }
}

#[test]
fn an_adamw_state_reads_as_before_and_a_muon_state_keeps_its_kind() {
    let trainee = tiny_trainee(Activation::Gelu);
    let _ = loss_of(&trainee);
    let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::new();
    // The adaptor every checkpoint before Muon held.
    let mut before =
        MatrixDecayAdamW::init::<A, Trained<A>>(&OptimizerConfig::default(), Kernels::QUILL);
    let stepped = before.step(1e-3, trainee.clone(), grads_of(&trainee, loss_of(&trainee)));
    let old_bytes = recorder.record(before.to_record(), ()).unwrap();
    let read: ModelOptimizerRecord<A> = recorder.load(old_bytes, &Default::default()).unwrap();
    assert_eq!(read.kind(), OptimizerKind::Adamw);
    assert_eq!(read.adamw.len(), before.to_record().len());
    // Loaded into the new optimizer, the next step equals the old optimizer's.
    let mut after =
        ModelOptimizer::<Trained<A>, A>::init(&OptimizerConfig::default(), Kernels::QUILL)
            .load_record(read);
    let grads = || grads_of(&stepped, loss_of(&stepped));
    let old_next = before.step(1e-3, stepped.clone(), grads());
    let new_next = after.step(1e-3, stepped.clone(), grads());
    assert_eq!(logits_of(&old_next), logits_of(&new_next));

    let mut muon = ModelOptimizer::<Trained<A>, A>::init(&muon_config(), Kernels::QUILL);
    let _ = muon.step(1e-3, trainee.clone(), grads_of(&trainee, loss_of(&trainee)));
    let bytes = recorder.record(muon.to_record(), ()).unwrap();
    let read: ModelOptimizerRecord<A> = recorder.load(bytes, &Default::default()).unwrap();
    assert_eq!(read.kind(), OptimizerKind::Muon);
    assert_eq!(read.muon.as_ref().unwrap().len(), 8);
}

/// The logits of a fixed input: equal logits, equal weights.
fn logits_of(trainee: &Trained<A>) -> Vec<f32> {
    let tokens = Tensor::<A, 2, Int>::from_ints([[1, 2]], &Default::default());
    trainee
        .gpt
        .forward(tokens)
        .inner()
        .into_data()
        .to_vec()
        .unwrap()
}
