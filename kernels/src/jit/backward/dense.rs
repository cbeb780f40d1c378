//! `Dense` backward: `dx = dy · wᵀ` and `dw = xᵀ · dy`, as 1×1 convolutions on the
//! [`conv`](super::conv) emitters, so they share their register tiles and tail handling.
//!
//! - The input gradient views the batch as rows of `b` samples (`b` the largest divisor of `n`
//!   up to 32): a 1×1 `Conv2D` over `[n / b, 1, b, d_in]`, whose register tiles are 5 samples ×
//!   8 inputs. It reads the kernel transposed by [`emit_dense_weight_transpose`].
//! - The kernel gradient views the batch as one image row of `n` pixels: a 1×1 `Conv2D` kernel
//!   gradient over `[1, 1, n, d_in]`, reduced over the batch by each item.
//!
//! Must not depend on anything of the `cnntui` crate.

use super::conv::{
    conv2d_transposed_weight_len, emit_conv2d_backward_input, emit_conv2d_backward_weight,
    emit_conv2d_weight_transpose,
};
use crate::geom::{Conv2dGeom, Padding2d};
use crate::jit::{Jit, JitError};

/// Samples per row of the input-gradient view: the largest divisor of `n` up to 32.
fn row_len(n: usize) -> usize {
    (1..=n.min(32))
        .rev()
        .find(|&b| n.is_multiple_of(b))
        .unwrap_or(1)
}

fn geom(n: usize, w: usize, d_in: usize, d_out: usize) -> Result<Conv2dGeom, JitError> {
    Conv2dGeom::new(n, (1, w, d_in), (1, 1), d_out, (1, 1), Padding2d::default())
        .filter(|_| d_in > 0 && d_out > 0 && n > 0)
        .ok_or_else(|| JitError::Unsupported(format!("dense backward {n}×{d_in}→{d_out}")))
}

/// The input-gradient view of a dense layer as a 1×1 convolution.
fn input_view(n: usize, d_in: usize, d_out: usize) -> Result<Conv2dGeom, JitError> {
    let b = row_len(n);
    geom(n / b, b, d_in, d_out)
}

/// Length in f32 of the transposed kernel [`emit_dense_weight_transpose`] writes
/// (`d_out · round4(d_in)`).
pub fn dense_transposed_weight_len(d_in: usize, d_out: usize) -> usize {
    d_out * d_in.div_ceil(4) * 4
}

/// Emits the kernel transpose [`emit_dense_backward_input`] reads. Returns the number of work
/// items (1).
///
/// # Buffers
/// `w`: `[d_in, d_out]`; `wt`: [`dense_transposed_weight_len`] f32, overwritten.
///
/// # Errors
/// [`JitError::Unsupported`] for zero sizes; [`JitError::Codegen`].
pub fn emit_dense_weight_transpose(
    jit: &mut Jit,
    name: &str,
    d_in: usize,
    d_out: usize,
) -> Result<usize, JitError> {
    let g = geom(1, 1, d_in, d_out)?;
    debug_assert_eq!(
        conv2d_transposed_weight_len(&g),
        dense_transposed_weight_len(d_in, d_out)
    );
    emit_conv2d_weight_transpose(jit, name, &g)
}

/// Emits `dx = dy · wᵀ` (overwritten). Returns the number of work items, `n / b` (see the
/// module docs).
///
/// # Buffers
/// `dy`: `[n, d_out]`; `wt`: from [`emit_dense_weight_transpose`]; `dx`: `[n, d_in]`.
///
/// # Work items
/// Item `i` owns samples `i·b .. (i + 1)·b`.
///
/// # Errors
/// [`JitError::Unsupported`] for zero sizes; [`JitError::Codegen`].
pub fn emit_dense_backward_input(
    jit: &mut Jit,
    name: &str,
    n: usize,
    d_in: usize,
    d_out: usize,
) -> Result<usize, JitError> {
    emit_conv2d_backward_input(jit, name, &input_view(n, d_in, d_out)?)
}

/// Emits `dw = xᵀ · dy` (overwritten, reduced over the whole batch). Returns the number of work
/// items, `ceil(d_in / 4)` (`d_in` when `d_in < 4`).
///
/// # Buffers
/// `x`: `[n, d_in]`; `dy`: `[n, d_out]`; `dw`: `[d_in, d_out]`.
///
/// # Work items
/// Item `i` owns rows `4i .. min(4i + 4, d_in)` of `dw`.
///
/// # Errors
/// [`JitError::Unsupported`] for zero sizes; [`JitError::Codegen`].
pub fn emit_dense_backward_weight(
    jit: &mut Jit,
    name: &str,
    n: usize,
    d_in: usize,
    d_out: usize,
) -> Result<usize, JitError> {
    emit_conv2d_backward_weight(jit, name, &geom(1, n, d_in, d_out)?)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Guarded, Rng, assert_close, compile, run};
    use super::*;
    use crate::reference;
    use proptest::prelude::*;

    fn check(n: usize, d_in: usize, d_out: usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(n * d_in, -1.0, 1.0);
        let w = rng.vec(d_in * d_out, -1.0, 1.0);
        let dy = rng.vec(n * d_out, -1.0, 1.0);
        let mut want_dx = vec![0.0; n * d_in];
        reference::dense_backward_input(n, d_in, d_out, &dy, &w, &mut want_dx);
        let mut want_dw = vec![0.0; d_in * d_out];
        reference::dense_backward_weight(n, d_in, d_out, &x, &dy, &mut want_dw);

        let (transpose, t_items) = compile(|j| emit_dense_weight_transpose(j, "wt", d_in, d_out));
        let (dx_k, dx_items) = compile(|j| emit_dense_backward_input(j, "dx", n, d_in, d_out));
        let (dw_k, dw_items) = compile(|j| emit_dense_backward_weight(j, "dw", n, d_in, d_out));
        let mut w_buf = Guarded::new(&w);
        let mut wt = Guarded::output(dense_transposed_weight_len(d_in, d_out));
        run(&transpose, &mut [&mut w_buf, &mut wt], t_items);
        let (mut x_buf, mut dy_buf) = (Guarded::new(&x), Guarded::new(&dy));
        let mut dx = Guarded::output(n * d_in);
        run(&dx_k, &mut [&mut dy_buf, &mut wt, &mut dx], dx_items);
        assert_close("dx", dx.get(), &want_dx, 1e-5, 2e-6 * d_out as f32);
        let mut dw = Guarded::output(d_in * d_out);
        run(&dw_k, &mut [&mut x_buf, &mut dy_buf, &mut dw], dw_items);
        assert_close("dw", dw.get(), &want_dw, 1e-5, 2e-6 * n as f32);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        #[test]
        fn dense_gradients_match_the_reference(
            n in 1usize..70,
            d_in in 1usize..40,
            d_out in 1usize..30,
            seed in any::<u64>(),
        ) {
            check(n, d_in, d_out, seed);
        }
    }

    #[test]
    fn mnist_dense_layers_match_the_reference() {
        check(64, 576, 64, 1);
        check(64, 64, 10, 2);
    }

    #[test]
    fn samples_are_grouped_by_the_largest_divisor_up_to_32() {
        assert_eq!(row_len(64), 32);
        assert_eq!(row_len(60), 30);
        assert_eq!(row_len(37), 1);
        assert_eq!(row_len(1), 1);
    }
}
