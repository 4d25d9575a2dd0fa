//! The linear layer `y = x·W (+ b)` of `x: [rows, d_in]` and `W: [d_in, d_out]`, with the
//! `gemm` crate's products called directly and split over the threads by rows.
//!
//! burn-flex runs the same products (it uses `gemm` too), but it lets `gemm` split each one
//! over the threads itself, which scales poorly at a transformer's sizes (a `[768, 128] ×
//! [128, 512]` product ran at 1.3× one thread's speed on two threads; split by rows, at 1.7×),
//! and every output is allocated twice (a zeroed byte buffer, then an aligned copy of it). The
//! backward pass is where this pays most: `dX = dY·Wᵀ` and `dW = Xᵀ·dY` have the same cost and
//! need no synchronisation, so they run side by side, each on its share of the threads, where
//! burn runs one after the other.
#![allow(unsafe_code)]

use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::buffer::written;
use crate::fused::record;
use crate::matrix::{Matrix, product_into, readable};
use crate::route::{FlexAutodiffTensor, Route, back, flex_tensor, route};

/// Fewest rows per thread: below this, splitting costs more than it saves.
const MIN_ROWS: usize = 16;

/// `x·weight + bias` of `x: [rows, d_in]`, `weight: [d_in, d_out]` and `bias: [d_out]`, when
/// all are burn-flex f32 tensors (with or without autodiff). Any other tensors are handed
/// back (`Err`) for burn's own `linear`.
#[allow(clippy::type_complexity)]
pub fn fused_linear<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 2>, (Tensor<B, 2>, Tensor<B, 2>, Option<Tensor<B, 1>>)> {
    let bias = bias.map(route);
    match (route(x), route(weight), bias) {
        (Route::FlexAutodiff(x), Route::FlexAutodiff(weight), None) => {
            Ok(back(linear_autodiff(x, weight)))
        }
        (Route::FlexAutodiff(x), Route::FlexAutodiff(weight), Some(Route::FlexAutodiff(b))) => {
            Ok(back(linear_bias_autodiff(x, weight, b)))
        }
        (Route::Flex(x), Route::Flex(weight), None) => Ok(back(forward(&x, &weight, None))),
        (Route::Flex(x), Route::Flex(weight), Some(Route::Flex(b))) => {
            Ok(back(forward(&x, &weight, Some(&b))))
        }
        (x, weight, bias) => Err((
            x.into_tensor(),
            weight.into_tensor(),
            bias.map(Route::into_tensor),
        )),
    }
}

/// `a·b` as a row-major `[a.rows, b.cols]` buffer, its rows shared out over `parts` threads.
fn product(a: Matrix, b: Matrix, parts: usize) -> Vec<f32> {
    let n = b.cols;
    let parts = parts.min(a.rows / MIN_ROWS).max(1);
    let rows_per_part = a.rows.div_ceil(parts).max(1);
    if n == 0 {
        return Vec::new();
    }
    // SAFETY: the blocks cover the output, and `product_into` writes every element of each.
    unsafe {
        written(a.rows * n, |out| {
            out.par_chunks_mut(rows_per_part * n)
                .enumerate()
                .for_each(|(part, block)| {
                    product_into(block, a.rows(part * rows_per_part, block.len() / n), b, 1.0);
                })
        })
    }
}

/// `y = x·weight (+ bias)`.
fn forward(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>) -> FlexTensor {
    let (x, weight) = (readable(x), readable(weight));
    let (a, b) = (matrix(&x), matrix(&weight));
    let mut y = product(a, b, rayon::current_num_threads());
    if let Some(bias) = bias {
        let bias = bias.to_contiguous();
        let bias = bias.storage::<f32>();
        y.par_chunks_mut(b.cols)
            .for_each(|row| row.iter_mut().zip(bias).for_each(|(y, b)| *y += b));
    }
    flex_tensor(y, Shape::new([a.rows, b.cols]))
}

fn matrix(tensor: &FlexTensor) -> Matrix<'_> {
    Matrix::of(tensor).expect("made readable")
}

/// The gradients of `x`, `weight` and `bias` that are asked for (`x` is needed for the
/// weight's, `weight` for the input's), given the output's gradient `dy: [rows, d_out]`.
fn backward(
    dy: &FlexTensor,
    x: Option<&FlexTensor>,
    weight: Option<&FlexTensor>,
    bias: bool,
) -> (Option<FlexTensor>, Option<FlexTensor>, Option<FlexTensor>) {
    let dy = dy.to_contiguous();
    let (x, weight) = (x.map(readable), weight.map(readable));
    let g = matrix(&dy);
    let threads = rayon::current_num_threads();
    let parts = match (&x, &weight) {
        (Some(_), Some(_)) => threads.div_ceil(2),
        _ => threads,
    };
    // dX = dY·Wᵀ and dW = Xᵀ·dY, side by side.
    let (dx, (dw, db)) = rayon::join(
        || {
            weight.as_ref().map(|w| {
                let w = matrix(w);
                flex_tensor(product(g, w.t(), parts), Shape::new([g.rows, w.rows]))
            })
        },
        || {
            let dw = x.as_ref().map(|x| {
                let x = matrix(x);
                flex_tensor(product(x.t(), g, parts), Shape::new([x.cols, g.cols]))
            });
            let db = bias.then(|| {
                let mut sums = vec![0.0f32; g.cols];
                for row in dy.storage::<f32>().chunks(g.cols) {
                    sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
                flex_tensor(sums, Shape::new([g.cols]))
            });
            (dw, db)
        },
    );
    (dx, dw, db)
}

/// The weight when `x` needs a gradient, `x` when the weight does.
type LinearState = (Option<FlexTensor>, Option<FlexTensor>);

fn linear_autodiff(x: FlexAutodiffTensor, weight: FlexAutodiffTensor) -> FlexAutodiffTensor {
    let state = saved(&x, &weight);
    record(
        [&x, &weight],
        || (forward(&x.primitive, &weight.primitive, None), state),
        |(x, weight): LinearState, dy, _| {
            let (dx, dw, _) = backward(dy, x.as_ref(), weight.as_ref(), false);
            [dx, dw]
        },
    )
}

fn linear_bias_autodiff(
    x: FlexAutodiffTensor,
    weight: FlexAutodiffTensor,
    bias: FlexAutodiffTensor,
) -> FlexAutodiffTensor {
    let state = saved(&x, &weight);
    record(
        [&x, &weight, &bias],
        || {
            (
                forward(&x.primitive, &weight.primitive, Some(&bias.primitive)),
                state,
            )
        },
        |(x, weight): LinearState, dy, [_, _, bias]| {
            let (dx, dw, db) = backward(dy, x.as_ref(), weight.as_ref(), bias);
            [dx, dw, db]
        },
    )
}

/// What the backward pass reads: `x` for the weight's gradient, the weight for `x`'s.
fn saved(x: &FlexAutodiffTensor, weight: &FlexAutodiffTensor) -> LinearState {
    (
        weight.is_tracked().then(|| x.primitive.clone()),
        x.is_tracked().then(|| weight.primitive.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{A, R, same};
    use burn::backend::Flex;
    use burn::tensor::Distribution;
    use burn::tensor::module::linear;

    /// Values and all three gradients against burn's `linear` on burn-ndarray, for a weight
    /// read in place and one read through a transposed view (the tied head), and for row
    /// counts that do and do not split evenly over the threads.
    #[test]
    fn matches_burns_linear_values_and_gradients() {
        let device = Default::default();
        for (rows, d_in, d_out, transposed, with_bias) in [
            (96, 24, 40, false, true),
            (37, 16, 9, true, false),
            (3, 8, 5, false, true),
        ] {
            let x = Tensor::<Flex, 2>::random([rows, d_in], Distribution::Default, &device);
            let w_shape = if transposed {
                [d_out, d_in]
            } else {
                [d_in, d_out]
            };
            let w = Tensor::<Flex, 2>::random(w_shape, Distribution::Default, &device);
            let b = Tensor::<Flex, 1>::random([d_out], Distribution::Default, &device);
            let dy = Tensor::<Flex, 2>::random([rows, d_out], Distribution::Default, &device);

            let (xa, wa, ba) = (
                Tensor::<A, 2>::from_inner(x.clone()).require_grad(),
                Tensor::<A, 2>::from_inner(w.clone()).require_grad(),
                Tensor::<A, 1>::from_inner(b.clone()).require_grad(),
            );
            let weight = if transposed {
                wa.clone().transpose()
            } else {
                wa.clone()
            };
            let bias = with_bias.then(|| ba.clone());
            let y = match fused_linear(xa.clone(), weight, bias) {
                Ok(y) => y,
                Err(_) => panic!("burn-flex tensors take the fused path"),
            };
            let grads = (y.clone() * Tensor::from_inner(dy.clone()))
                .sum()
                .backward();

            let to_ref = |t: Tensor<Flex, 2>| {
                Tensor::<R, 2>::from_data(t.into_data(), &Default::default()).require_grad()
            };
            let (xr, wr) = (to_ref(x), to_ref(w));
            let br = Tensor::<R, 1>::from_data(b.into_data(), &Default::default()).require_grad();
            let weight = if transposed {
                wr.clone().transpose()
            } else {
                wr.clone()
            };
            let want = linear(xr.clone(), weight, with_bias.then(|| br.clone()));
            let dy = Tensor::<R, 2>::from_data(dy.into_data(), &Default::default());
            let want_grads = (want.clone() * dy).sum().backward();

            same(y.inner(), want.inner());
            same(xa.grad(&grads).unwrap(), xr.grad(&want_grads).unwrap());
            same(wa.grad(&grads).unwrap(), wr.grad(&want_grads).unwrap());
            if with_bias {
                same(ba.grad(&grads).unwrap(), br.grad(&want_grads).unwrap());
            }
        }
    }

    #[test]
    fn without_autodiff_it_is_the_same_product() {
        let device = Default::default();
        let x = Tensor::<Flex, 2>::random([40, 12], Distribution::Default, &device);
        let w = Tensor::<Flex, 2>::random([12, 7], Distribution::Default, &device);
        let want = x.clone().matmul(w.clone());
        match fused_linear(x, w, None) {
            Ok(y) => y
                .into_data()
                .assert_approx_eq::<f32>(&want.into_data(), Default::default()),
            Err(_) => panic!("burn-flex tensors take the fused path"),
        }
    }
}
