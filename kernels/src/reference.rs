//! The plain-Rust reference kernels, forward and backward: the oracle every JIT kernel is checked
//! against, and the runtime's `--backend reference`.
//!
//! Every kernel is a free function generic over [`Real`] (`f32` for training, `f64` for gradient
//! checks) working on flat slices: activations NHWC, convolution kernels HWIO, dense kernels
//! `[d_in, d_out]` (Keras order). Each documents its `# Shapes`; a slice of the wrong length is a
//! caller bug and panics.
//!
//! Conventions the runtime relies on:
//! - Kernels are single-threaded. The caller splits a batch across threads by calling with
//!   `geom.with_batch(k)` on sub-slices, so every output is *overwritten*, never accumulated —
//!   weight gradients included: the caller sums the per-chunk weight gradients. Batch
//!   normalisation needs whole-batch statistics and must not be split.
//! - Backward kernels take the gradient of a scalar loss with respect to the output (`dy`) and
//!   return the gradient with respect to an input (`dx`) or a parameter (`dw`).
//! - Activation gradients are computed from the activation's *output*, so the pre-activation
//!   never has to be kept.
//!
//! Speed: the convolutions and dense layers are lowered to one accumulate-GEMV micro-kernel
//! (`gemv`) whose accumulators stay in registers and whose innermost loop runs over contiguous
//! output channels, so LLVM vectorises it with the baseline target; reductions keep independent
//! partial sums. No `unsafe`.
//!
//! Must not depend on anything of the `cnntui` crate.

mod activation;
mod batch_norm;
mod conv;
mod dense;
mod depthwise;
mod elementwise;
mod gemv;
mod loss;
mod optimizer;
mod pool;
#[cfg(test)]
mod testing;

pub use activation::{
    Activation, activation_backward, activation_forward, activation_in_place, count_dead,
    count_dead_per_channel,
};
pub use batch_norm::{
    batch_norm_backward, batch_norm_backward_infer, batch_norm_forward_infer,
    batch_norm_forward_train, batch_norm_update_moving_stats,
};
pub use conv::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
pub use dense::{dense_backward_input, dense_backward_weight, dense_forward};
pub use depthwise::{depthwise_backward_input, depthwise_backward_weight, depthwise_forward};
pub use elementwise::{
    add_forward, bias_backward, dropout_backward, dropout_forward, zero_pad_backward,
    zero_pad_forward,
};
pub use loss::{
    binary_cross_entropy_probs, categorical_cross_entropy_probs, sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
};
pub use optimizer::{adam_step, rmsprop_step, sgd_step};
pub use pool::{
    avg_pool_backward, avg_pool_forward, global_avg_pool_backward, global_avg_pool_forward,
    max_pool_backward, max_pool_forward,
};

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point element type the reference kernels run on: `f32` (training) or `f64`
/// (gradient checks).
pub trait Real:
    num_traits::Float
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Send
    + Sync
    + Default
    + Debug
    + Sum
    + 'static
{
    /// The nearest value of this type (rounding, as `as` does).
    fn from_f64(v: f64) -> Self;

    /// A count as this type (exact below 2^24 for `f32`, 2^53 for `f64`).
    fn from_usize(n: usize) -> Self;
}

impl Real for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }

    fn from_usize(n: usize) -> Self {
        n as f32
    }
}

impl Real for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }

    fn from_usize(n: usize) -> Self {
        n as f64
    }
}

/// The taps of a window that fall inside the input, for output position `o` along one axis.
///
/// Returns `(k0, k1, i0)`: taps `k0..k1` of `0..kernel` are inside, and tap `k0` reads input
/// index `i0`. The range is empty when the whole window lies in padding.
pub(crate) fn window_taps(
    o: usize,
    stride: usize,
    pad_before: usize,
    input: usize,
    kernel: usize,
) -> (usize, usize, usize) {
    let start = o * stride;
    let k0 = pad_before.saturating_sub(start).min(kernel);
    let k1 = (pad_before + input)
        .saturating_sub(start)
        .min(kernel)
        .max(k0);
    (k0, k1, (start + k0).saturating_sub(pad_before))
}

/// `Σ a[i]·b[i]` with eight independent partial sums, so the reduction vectorises.
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let b8 = &b[..a8.len()];
    let b_rest = &b[a8.len()..a.len()];
    for (ca, cb) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for ((s, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *s += x * y;
        }
    }
    let tail: T = a_rest.iter().zip(b_rest).map(|(&x, &y)| x * y).sum();
    sum8(acc) + tail
}

/// `Σ a[i]` with eight independent partial sums.
pub(crate) fn sum<T: Real>(a: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    for ca in a8.chunks_exact(8) {
        for (s, &x) in acc.iter_mut().zip(ca) {
            *s += x;
        }
    }
    sum8(acc) + a_rest.iter().copied().sum()
}

fn sum8<T: Real>(a: [T; 8]) -> T {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_and_sum_agree_with_sequential_sums_at_every_length() {
        for len in 0..40 {
            let a: Vec<f64> = (0..len).map(|i| (i as f64) * 0.5 - 3.0).collect();
            let b: Vec<f64> = (0..len).map(|i| 1.0 + (i % 7) as f64).collect();
            let expect_dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let expect_sum: f64 = a.iter().sum();
            assert_eq!(dot(&a, &b), expect_dot, "len {len}");
            assert_eq!(sum(&a), expect_sum, "len {len}");
        }
    }

    #[test]
    fn real_conversions_round_like_as() {
        assert_eq!(<f32 as Real>::from_f64(0.1), 0.1f32);
        assert_eq!(<f64 as Real>::from_usize(7), 7.0);
        assert_eq!(<f32 as Real>::from_usize(60_000), 60_000.0);
    }
}
