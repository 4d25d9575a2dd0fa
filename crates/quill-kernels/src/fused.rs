//! A burn-flex operation with `N` inputs recorded in autodiff's graph: its forward pass, the
//! state it keeps, and a backward function that turns that state and the output's gradient
//! into the gradients of the inputs that need one. The kernels with several inputs (linear,
//! layer norm) share it.

use burn::backend::flex::Flex;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::FlexTensor;

use crate::route::FlexAutodiffTensor;

/// `(state, output gradient, which inputs need a gradient)` to each input's gradient.
pub type BackwardFn<S, const N: usize> = fn(S, &FlexTensor, [bool; N]) -> [Option<FlexTensor>; N];

#[derive(Debug)]
struct Fused<S, const N: usize> {
    backward: BackwardFn<S, N>,
}

impl<S, const N: usize> Backward<Flex, N> for Fused<S, N>
where
    S: Clone + Send + std::fmt::Debug + 'static,
{
    type State = S;

    fn backward(self, ops: Ops<S, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        let wanted = ops.parents.each_ref().map(Option::is_some);
        let inputs = (self.backward)(ops.state, &dy, wanted);
        for (node, grad) in ops.parents.into_iter().zip(inputs) {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// The output of `forward` (which also gives the state to keep), recorded as a function of
/// `inputs` whose gradients `backward` computes.
pub fn record<S, const N: usize>(
    inputs: [&FlexAutodiffTensor; N],
    forward: impl FnOnce() -> (FlexTensor, S),
    backward: BackwardFn<S, N>,
) -> FlexAutodiffTensor
where
    S: Clone + Send + std::fmt::Debug + 'static,
{
    match (Fused { backward })
        .prepare::<NoCheckpointing>(inputs.map(|input| input.node.clone()))
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (output, state) = forward();
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward().0),
    }
}
