//! The arguments of one `cublasGemmStridedBatchedEx` call for a batch of row-major products,
//! worked out from the operands' shapes and strides alone (no GPU), so they are tested here
//! against a model of what cuBLAS computes.
//!
//! cuBLAS is column-major. A row-major `[rows, cols]` matrix with `ld` elements per row is,
//! read column-major, its transpose with leading dimension `ld`. So row-major `C = op(A)·op(B)`
//! is column-major `Cᵀ = op(B)ᵀ·op(A)ᵀ`: cuBLAS gets B first, then A, and `n, m` for `m, n`.

/// How one operand's matrices lie in memory: the last two dimensions are row-major matrices
/// (`transposed: false`) or transposes of row-major matrices (`true`, a `swap_dims` view), with
/// `ld` elements per stored row, one matrix every `batch_stride` elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub transposed: bool,
    pub ld: usize,
    pub batch_stride: usize,
}

/// The layout of a tensor of `shape` and `strides` (in elements), or `None` when cuBLAS cannot
/// read it in place (it is copied into row-major order first). Rows may be padded (burn pads
/// the rows of some outputs for aligned loads): `ld` is the stride between stored rows.
pub fn layout(shape: &[usize], strides: &[usize]) -> Option<Layout> {
    let rank = shape.len();
    let (rows, cols) = (shape[rank - 2], shape[rank - 1]);
    let (row_stride, col_stride) = (strides[rank - 2], strides[rank - 1]);
    let (transposed, ld) = if (cols == 1 || col_stride == 1) && (rows == 1 || row_stride >= cols) {
        (false, if rows == 1 { cols } else { row_stride })
    } else if (rows == 1 || row_stride == 1) && (cols == 1 || col_stride >= rows) {
        (true, if cols == 1 { rows } else { col_stride })
    } else {
        return None;
    };
    // The batch dimensions must collapse into one: each steps by the next one's whole extent.
    let mut batch_stride = None::<usize>;
    let mut next = 0;
    for dim in (0..rank - 2).rev().filter(|&dim| shape[dim] != 1) {
        match batch_stride {
            None => batch_stride = Some(strides[dim]),
            Some(_) if strides[dim] != next => return None,
            Some(_) => {}
        }
        next = strides[dim] * shape[dim];
    }
    Some(Layout {
        transposed,
        ld: ld.max(1),
        batch_stride: batch_stride.unwrap_or(rows * cols),
    })
}

/// The layout of a contiguous (row-major) tensor of `shape`.
pub fn contiguous(shape: &[usize]) -> Layout {
    let rank = shape.len();
    Layout {
        transposed: false,
        ld: shape[rank - 1].max(1),
        batch_stride: shape[rank - 2] * shape[rank - 1],
    }
}

/// The last two dimensions of `dims` as `(rows, cols)` of `op(x)`: swapped when `transposed`.
fn oriented(dims: &[usize], transposed: bool) -> (usize, usize) {
    let rank = dims.len();
    match transposed {
        false => (dims[rank - 2], dims[rank - 1]),
        true => (dims[rank - 1], dims[rank - 2]),
    }
}

/// The dimensions of `op(a)·op(b)`: `a`'s batch, then `[m, n]`.
pub fn output_dims(
    a_dims: &[usize],
    transpose_a: bool,
    b_dims: &[usize],
    transpose_b: bool,
) -> Vec<usize> {
    let rank = a_dims.len();
    let mut out = a_dims[..rank - 2].to_vec();
    out.extend([
        oriented(a_dims, transpose_a).0,
        oriented(b_dims, transpose_b).1,
    ]);
    out
}

/// One `cublasGemmStridedBatchedEx` call, in cuBLAS's order of arguments: `first` is B, `second`
/// is A; `transpose_*` is `CUBLAS_OP_T` where set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub transpose_first: bool,
    pub transpose_second: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ld_first: usize,
    pub stride_first: usize,
    pub ld_second: usize,
    pub stride_second: usize,
    pub ldc: usize,
    pub stride_c: usize,
    pub batch: usize,
}

/// The call computing row-major `op(a)·op(b)` into a contiguous output, for `a` of `a_dims`
/// laid out as `a` (likewise `b`), `op` transposing when `transpose_*` is set. Returns the
/// call and the output's dimensions, `[..batch, m, n]`.
pub fn call(
    a_dims: &[usize],
    a: Layout,
    transpose_a: bool,
    b_dims: &[usize],
    b: Layout,
    transpose_b: bool,
) -> (Call, Vec<usize>) {
    let rank = a_dims.len();
    let ((m, k), (k_b, n)) = (oriented(a_dims, transpose_a), oriented(b_dims, transpose_b));
    assert_eq!(
        k, k_b,
        "quill-cublas: inner dimensions of {a_dims:?} · {b_dims:?}"
    );
    assert_eq!(
        a_dims[..rank - 2],
        b_dims[..rank - 2],
        "quill-cublas: the batches of {a_dims:?} · {b_dims:?}"
    );
    let out = output_dims(a_dims, transpose_a, b_dims, transpose_b);
    // An operand is transposed for cuBLAS when exactly one of "asked to" and "stored so" holds.
    let call = Call {
        transpose_first: transpose_b != b.transposed,
        transpose_second: transpose_a != a.transposed,
        m: n,
        n: m,
        k,
        ld_first: b.ld,
        stride_first: b.batch_stride,
        ld_second: a.ld,
        stride_second: a.batch_stride,
        ldc: n.max(1),
        stride_c: m * n,
        batch: a_dims[..rank - 2].iter().product(),
    };
    (call, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What cuBLAS computes for `call`: column-major `C = op(first)·op(second)` per batch,
    /// after the checks cuBLAS makes (a leading dimension at least its stored matrix's rows).
    fn cublas_model(call: &Call, first: &[f32], second: &[f32]) -> Vec<f32> {
        let rows = |transposed: bool, plain: usize, swapped: usize| match transposed {
            false => plain.max(1),
            true => swapped.max(1),
        };
        assert!(
            call.ld_first >= rows(call.transpose_first, call.m, call.k),
            "{call:?}"
        );
        assert!(
            call.ld_second >= rows(call.transpose_second, call.k, call.n),
            "{call:?}"
        );
        assert!(call.ldc >= call.m.max(1), "{call:?}");
        let read =
            |memory: &[f32], base: usize, ld: usize, transposed: bool, i: usize, j: usize| {
                // Element (i, j) of op(X), X column-major with leading dimension ld.
                match transposed {
                    false => memory[base + i + j * ld],
                    true => memory[base + j + i * ld],
                }
            };
        let mut c = vec![0.0; call.stride_c * call.batch];
        for batch in 0..call.batch {
            for i in 0..call.m {
                for j in 0..call.n {
                    let sum: f32 = (0..call.k)
                        .map(|l| {
                            let x = read(
                                first,
                                batch * call.stride_first,
                                call.ld_first,
                                call.transpose_first,
                                i,
                                l,
                            );
                            let y = read(
                                second,
                                batch * call.stride_second,
                                call.ld_second,
                                call.transpose_second,
                                l,
                                j,
                            );
                            x * y
                        })
                        .sum();
                    c[batch * call.stride_c + i + j * call.ldc] = sum;
                }
            }
        }
        c
    }

    /// A strided view: `dims` and `strides` over `memory`, read element by element.
    fn element(memory: &[f32], strides: &[usize], index: &[usize]) -> f32 {
        memory[index.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>()]
    }

    /// Row-major strides of `dims`.
    fn row_major(dims: &[usize]) -> Vec<usize> {
        let mut strides = vec![1; dims.len()];
        for d in (0..dims.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * dims[d + 1];
        }
        strides
    }

    /// `dims` and `strides` of a contiguous tensor of `stored` with dimensions `i, j` swapped.
    fn swapped(stored: &[usize], i: usize, j: usize) -> (Vec<usize>, Vec<usize>) {
        let (mut dims, mut strides) = (stored.to_vec(), row_major(stored));
        dims.swap(i, j);
        strides.swap(i, j);
        (dims, strides)
    }

    /// Every index of `dims`, in row-major order.
    fn indices(dims: &[usize]) -> Vec<Vec<usize>> {
        let mut all = vec![vec![]];
        for &d in dims {
            all = all
                .into_iter()
                .flat_map(|prefix: Vec<usize>| {
                    (0..d).map(move |i| [prefix.clone(), vec![i]].concat())
                })
                .collect();
        }
        all
    }

    /// The row-major copy of a strided view (what `into_contiguous` makes).
    fn copy(memory: &[f32], dims: &[usize], strides: &[usize]) -> Vec<f32> {
        indices(dims)
            .iter()
            .map(|index| element(memory, strides, index))
            .collect()
    }

    /// Checks the planned call against a plain product of the logical operands, `a` and `b`
    /// given as views (`dims`, `strides`) of memories filled with distinct values.
    fn check(a: (Vec<usize>, Vec<usize>), ta: bool, b: (Vec<usize>, Vec<usize>), tb: bool) {
        let size = |(dims, strides): &(Vec<usize>, Vec<usize>)| {
            1 + dims
                .iter()
                .zip(strides)
                .map(|(d, s)| (d - 1) * s)
                .sum::<usize>()
        };
        let fill = |n: usize, seed: f32| (0..n).map(|i| ((i as f32 * seed) % 7.0) - 3.0).collect();
        let (a_memory, b_memory): (Vec<f32>, Vec<f32>) = (fill(size(&a), 1.7), fill(size(&b), 2.3));
        // As gemm.rs does: in place where the layout allows, else a row-major copy.
        let operand = |(dims, strides): &(Vec<usize>, Vec<usize>), memory: &Vec<f32>| match layout(
            dims, strides,
        ) {
            Some(layout) => (layout, memory.clone()),
            None => (contiguous(dims), copy(memory, dims, strides)),
        };
        let ((a_layout, a_data), (b_layout, b_data)) =
            (operand(&a, &a_memory), operand(&b, &b_memory));
        let (call, out_dims) = call(&a.0, a_layout, ta, &b.0, b_layout, tb);
        let actual = cublas_model(&call, &b_data, &a_data);

        // The logical product, element by element.
        let rank = a.0.len();
        let at =
            |view: &(Vec<usize>, Vec<usize>), memory: &[f32], t: bool, mut index: Vec<usize>| {
                if t {
                    index.swap(rank - 2, rank - 1);
                }
                element(memory, &view.1, &index)
            };
        let k = if ta { a.0[rank - 2] } else { a.0[rank - 1] };
        for (flat, index) in indices(&out_dims).into_iter().enumerate() {
            let (i, j) = (index[rank - 2], index[rank - 1]);
            let expected: f32 = (0..k)
                .map(|l| {
                    let mut ai = index.clone();
                    (ai[rank - 2], ai[rank - 1]) = (i, l);
                    let mut bi = index.clone();
                    (bi[rank - 2], bi[rank - 1]) = (l, j);
                    at(&a, &a_memory, ta, ai) * at(&b, &b_memory, tb, bi)
                })
                .sum();
            assert!(
                (actual[flat] - expected).abs() <= 1e-3 * expected.abs().max(1.0),
                "{a:?} {ta} · {b:?} {tb} at {index:?}: {} vs {expected} ({call:?})",
                actual[flat]
            );
        }
    }

    fn plain(dims: &[usize]) -> (Vec<usize>, Vec<usize>) {
        (dims.to_vec(), row_major(dims))
    }

    #[test]
    fn plain_and_batched_products() {
        check(plain(&[5, 3]), false, plain(&[3, 4]), false);
        check(plain(&[2, 3, 5, 3]), false, plain(&[2, 3, 3, 4]), false);
        // Single rows and columns, where strides say little.
        check(plain(&[1, 3]), false, plain(&[3, 1]), false);
        check(plain(&[2, 5, 1]), false, plain(&[2, 1, 4]), false);
    }

    #[test]
    fn transposed_views_are_read_in_place() {
        // q · kᵀ: kᵀ is a swap_dims view of a contiguous [2, 3, 4, 3].
        let key = swapped(&[2, 3, 4, 3], 2, 3);
        assert!(layout(&key.0, &key.1).unwrap().transposed);
        check(plain(&[2, 3, 5, 3]), false, key, false);
        let query = swapped(&[2, 3, 3, 5], 2, 3);
        check(query, false, plain(&[2, 3, 3, 4]), false);
        // The tied head: x · Eᵀ with E a [vocab, d] weight.
        check(plain(&[6, 3]), false, swapped(&[7, 3], 0, 1), false);
    }

    #[test]
    fn the_backward_pass_transposes_by_flags() {
        // dA = dC · Bᵀ and dB = Aᵀ · dC, with operands plain or themselves transposed views.
        check(plain(&[2, 5, 4]), false, plain(&[2, 3, 4]), true);
        check(plain(&[2, 5, 3]), true, plain(&[2, 5, 4]), false);
        check(
            swapped(&[2, 4, 3], 1, 2),
            false,
            swapped(&[2, 4, 5], 1, 2),
            true,
        );
        check(swapped(&[2, 3, 5], 1, 2), true, plain(&[2, 5, 4]), false);
        check(plain(&[16, 3]), true, plain(&[16, 5]), false);
    }

    /// `dims` viewed in a buffer whose rows hold `pitch` elements (a padded row-major tensor).
    fn padded(dims: &[usize], pitch: usize) -> (Vec<usize>, Vec<usize>) {
        let mut padded = dims.to_vec();
        *padded.last_mut().unwrap() = pitch;
        (dims.to_vec(), row_major(&padded))
    }

    #[test]
    fn padded_rows_are_read_in_place() {
        let x = padded(&[2, 5, 3], 8);
        assert_eq!(
            layout(&x.0, &x.1),
            Some(Layout {
                transposed: false,
                ld: 8,
                batch_stride: 40
            })
        );
        check(x, false, padded(&[2, 3, 4], 16), false);
        // The head's [rows, 65] logits padded to 128, as operands of both backward products.
        check(padded(&[6, 7], 16), false, plain(&[5, 7]), true);
        check(padded(&[6, 5], 8), true, padded(&[6, 7], 16), false);
        // A transposed view of a padded tensor.
        check(
            plain(&[2, 5, 3]),
            false,
            {
                let (dims, strides) = padded(&[2, 4, 3], 8);
                let (mut dims, mut strides) = (dims, strides);
                dims.swap(1, 2);
                strides.swap(1, 2);
                (dims, strides)
            },
            false,
        );
    }

    #[test]
    fn strided_batches_are_copied_first() {
        // [batch, seq, head, dim] viewed as [batch, head, seq, dim]: the batch does not step by
        // whole matrices.
        let heads = swapped(&[2, 5, 3, 4], 1, 2);
        assert_eq!(layout(&heads.0, &heads.1), None);
        // Batch dimensions that collapse into one stride are read in place: [2, 3] of padded
        // matrices.
        let batched = padded(&[2, 3, 5, 4], 6);
        assert_eq!(
            layout(&batched.0, &batched.1).map(|l| l.batch_stride),
            Some(30)
        );
        check(heads, false, plain(&[2, 3, 4, 6]), false);
        let values = swapped(&[2, 4, 3, 6], 1, 2);
        check(plain(&[2, 3, 5, 4]), false, values, false);
    }
}
