//! Losses. Each returns the *sum* over the batch of the per-sample losses (the caller divides by
//! the epoch's sample count for the reported mean) and writes the gradient of the *mean* loss
//! over this call's `n` samples, i.e. already divided by `n`.
//!
//! The fused forms (softmax or sigmoid output plus cross-entropy) are what Keras computes when
//! the loss follows a softmax or sigmoid layer: its TensorFlow backend takes the logits behind
//! the activation. The `*_probs` forms are Keras's formulas on probabilities (normalised rows,
//! clipped to `[1e-7, 1 - 1e-7]`), for outputs of any other layer.
//!
//! With a batch split across threads the caller must scale: a chunk of `k` samples gets
//! gradients divided by `k`, not by the batch size.

use super::activation::sigmoid;
use super::{Real, dot};

/// Keras's `backend.epsilon()`.
const KERAS_EPSILON: f64 = 1e-7;

/// Softmax followed by categorical cross-entropy, from logits: per sample
/// `Σ_j t_j·(logsumexp(z) - z_j)`, computed with the row maximum subtracted. `probs_out` gets the
/// softmax; `dlogits = (p·Σt - t) / n`, which is `(p - t)/n` for one-hot (or any normalised)
/// targets. Returns the sum of the per-sample losses.
///
/// # Shapes
/// - `logits`, `targets`, `probs_out`, `dlogits`: `[n, classes]`
pub fn softmax_cross_entropy<T: Real>(
    n: usize,
    classes: usize,
    logits: &[T],
    targets: &[T],
    probs_out: &mut [T],
    dlogits: &mut [T],
) -> T {
    check_shapes(
        n * classes,
        &[logits.len(), targets.len(), probs_out.len(), dlogits.len()],
    );
    if n == 0 || classes == 0 {
        return T::zero();
    }
    let per_sample = T::one() / T::from_usize(n);
    let mut total = T::zero();
    let rows = logits
        .chunks_exact(classes)
        .zip(targets.chunks_exact(classes));
    let outs = probs_out
        .chunks_exact_mut(classes)
        .zip(dlogits.chunks_exact_mut(classes));
    for ((z, t), (p, dz)) in rows.zip(outs) {
        let max = z.iter().copied().fold(T::neg_infinity(), T::max);
        for (p, &z) in p.iter_mut().zip(z) {
            *p = (z - max).exp();
        }
        let s = super::sum(p);
        let log_sum_exp = max + s.ln();
        let inv = T::one() / s;
        p.iter_mut().for_each(|p| *p *= inv);
        let t_sum = super::sum(t);
        total += t_sum * log_sum_exp - dot(t, z);
        for ((dz, &p), &t) in dz.iter_mut().zip(p.iter()).zip(t) {
            *dz = (p * t_sum - t) * per_sample;
        }
    }
    total
}

/// Sigmoid followed by binary cross-entropy, from logits, element-wise
/// `max(z, 0) - z·t + ln(1 + e^-|z|)` (no overflow for any `z`). As Keras, a sample's loss is
/// the mean over its `cols = logits.len() / n` outputs. `probs_out` gets `σ(z)`;
/// `dlogits = (σ(z) - t) / (n·cols)`. Returns the sum of the per-sample losses.
///
/// # Shapes
/// - `logits`, `targets`, `probs_out`, `dlogits`: `[n, cols]` (`cols` is 1 for one sigmoid unit)
pub fn sigmoid_binary_cross_entropy<T: Real>(
    n: usize,
    logits: &[T],
    targets: &[T],
    probs_out: &mut [T],
    dlogits: &mut [T],
) -> T {
    let len = logits.len();
    check_shapes(len, &[targets.len(), probs_out.len(), dlogits.len()]);
    if n == 0 || len == 0 {
        return T::zero();
    }
    assert!(
        len.is_multiple_of(n),
        "binary cross-entropy: logits must be [n, cols]"
    );
    let cols = len / n;
    let mut total = T::zero();
    let elements = logits
        .iter()
        .zip(targets)
        .zip(probs_out.iter_mut().zip(dlogits.iter_mut()));
    let per_element = T::one() / T::from_usize(len);
    for ((&z, &t), (p, dz)) in elements {
        total += z.max(T::zero()) - z * t + (-z.abs()).exp().ln_1p();
        *p = sigmoid(z);
        *dz = (*p - t) * per_element;
    }
    total / T::from_usize(cols)
}

/// Categorical cross-entropy on probabilities, as Keras: each row is divided by its sum, clipped
/// to `[1e-7, 1 - 1e-7]`, then `-Σ t·ln(q)`. `dprobs` is the gradient of the mean loss through
/// the normalisation; clipped entries pass no gradient. Returns the sum of the per-sample losses.
///
/// # Shapes
/// - `probs`, `targets`, `dprobs`: `[n, classes]`
pub fn categorical_cross_entropy_probs<T: Real>(
    n: usize,
    classes: usize,
    probs: &[T],
    targets: &[T],
    dprobs: &mut [T],
) -> T {
    check_shapes(n * classes, &[probs.len(), targets.len(), dprobs.len()]);
    if n == 0 || classes == 0 {
        return T::zero();
    }
    let (lo, hi) = clip_bounds::<T>();
    let per_sample = T::one() / T::from_usize(n);
    let mut total = T::zero();
    let rows = probs
        .chunks_exact(classes)
        .zip(targets.chunks_exact(classes));
    for ((p, t), dp) in rows.zip(dprobs.chunks_exact_mut(classes)) {
        let inv_s = T::one() / super::sum(p);
        // dp first holds g = ∂loss/∂q (zero where clipped), then ∂loss/∂p = (g - Σ g·q) / s.
        let mut g_dot_q = T::zero();
        for ((dp, &p), &t) in dp.iter_mut().zip(p).zip(t) {
            let q = p * inv_s;
            let clipped = q.max(lo).min(hi);
            total -= t * clipped.ln();
            *dp = if q < lo || q > hi {
                T::zero()
            } else {
                -t / clipped
            };
            g_dot_q += *dp * q;
        }
        dp.iter_mut()
            .for_each(|dp| *dp = (*dp - g_dot_q) * inv_s * per_sample);
    }
    total
}

/// Binary cross-entropy on probabilities, as Keras: clipped to `[1e-7, 1 - 1e-7]`, element-wise
/// `-(t·ln p + (1 - t)·ln(1 - p))`, a sample's loss the mean over its `cols = probs.len() / n`
/// outputs. Clipped entries pass no gradient. Returns the sum of the per-sample losses.
///
/// # Shapes
/// - `probs`, `targets`, `dprobs`: `[n, cols]`
pub fn binary_cross_entropy_probs<T: Real>(
    n: usize,
    probs: &[T],
    targets: &[T],
    dprobs: &mut [T],
) -> T {
    let len = probs.len();
    check_shapes(len, &[targets.len(), dprobs.len()]);
    if n == 0 || len == 0 {
        return T::zero();
    }
    assert!(
        len.is_multiple_of(n),
        "binary cross-entropy: probs must be [n, cols]"
    );
    let (lo, hi) = clip_bounds::<T>();
    let one = T::one();
    let per_element = one / T::from_usize(len);
    let mut total = T::zero();
    for ((dp, &p), &t) in dprobs.iter_mut().zip(probs).zip(targets) {
        let c = p.max(lo).min(hi);
        total -= t * c.ln() + (one - t) * (one - c).ln();
        *dp = if p < lo || p > hi {
            T::zero()
        } else {
            (-t / c + (one - t) / (one - c)) * per_element
        };
    }
    total / T::from_usize(len / n)
}

fn clip_bounds<T: Real>() -> (T, T) {
    let eps = T::from_f64(KERAS_EPSILON);
    (eps, T::one() - eps)
}

fn check_shapes(len: usize, lens: &[usize]) {
    assert!(
        lens.iter().all(|&l| l == len),
        "loss: every slice must be [n, classes]"
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Rng, assert_close, assert_grad};
    use super::*;

    fn softmax_ce(n: usize, k: usize, z: &[f64], t: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let (mut p, mut dz) = (vec![f64::NAN; z.len()], vec![f64::NAN; z.len()]);
        let loss = softmax_cross_entropy(n, k, z, t, &mut p, &mut dz);
        (loss, p, dz)
    }

    fn one_hot(rng: &mut Rng, n: usize, k: usize) -> Vec<f64> {
        let mut t = vec![0.0; n * k];
        for row in t.chunks_exact_mut(k) {
            row[rng.range(0, k - 1)] = 1.0;
        }
        t
    }

    #[test]
    fn softmax_cross_entropy_matches_hand_values_and_survives_huge_logits() {
        // ln(e + e² + e³) - 3 = 0.40760596444438
        let (loss, p, _) = softmax_ce(1, 3, &[1.0, 2.0, 3.0], &[0.0, 0.0, 1.0]);
        assert_close("loss", &[loss], &[0.407_605_964_444_380_1], 1e-14, 0.0);
        assert_close(
            "p",
            &p,
            &[
                0.090_030_573_170_380_46,
                0.244_728_471_054_797_67,
                0.665_240_955_774_821_9,
            ],
            1e-15,
            0.0,
        );
        let (loss, p, dz) = softmax_ce(2, 2, &[1000.0, 0.0, 0.0, 1000.0], &[1.0, 0.0, 1.0, 0.0]);
        assert_eq!(loss, 1000.0);
        assert_eq!(p, [1.0, 0.0, 0.0, 1.0]);
        assert_eq!(dz, [0.0, 0.0, -0.5, 0.5]);
    }

    #[test]
    fn softmax_cross_entropy_gradient_matches_finite_differences() {
        let mut rng = Rng::new(61);
        for (n, k) in [(1, 10), (3, 7)] {
            let z = rng.vec(n * k, -3.0, 3.0);
            let t = one_hot(&mut rng, n, k);
            let (_, _, dz) = softmax_ce(n, k, &z, &t);
            assert_grad("dz", &z, &dz, |z| softmax_ce(n, k, z, &t).0 / n as f64);
        }
        // Soft targets that do not sum to one.
        let z = rng.vec(8, -3.0, 3.0);
        let t = rng.vec(8, 0.0, 1.0);
        let (_, _, dz) = softmax_ce(2, 4, &z, &t);
        assert_grad("dz soft", &z, &dz, |z| softmax_ce(2, 4, z, &t).0 / 2.0);
    }

    fn sigmoid_bce(n: usize, z: &[f64], t: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let (mut p, mut dz) = (vec![f64::NAN; z.len()], vec![f64::NAN; z.len()]);
        let loss = sigmoid_binary_cross_entropy(n, z, t, &mut p, &mut dz);
        (loss, p, dz)
    }

    #[test]
    fn sigmoid_cross_entropy_matches_hand_values_and_survives_huge_logits() {
        // -ln σ(0) = ln 2; -ln(1 - σ(2)) = 2 + ln(1 + e^-2) = 2.1269280110429727.
        let (loss, p, dz) = sigmoid_bce(2, &[0.0, 2.0], &[1.0, 0.0]);
        assert_close(
            "loss",
            &[loss],
            &[std::f64::consts::LN_2 + 2.126_928_011_042_972_7],
            1e-15,
            0.0,
        );
        assert_close("p", &p, &[0.5, 0.880_797_077_977_882_3], 1e-15, 0.0);
        assert_close("dz", &dz, &[-0.25, 0.440_398_538_988_941_16], 1e-15, 0.0);
        let (loss, _, dz) = sigmoid_bce(1, &[-800.0], &[1.0]);
        assert_eq!((loss, dz[0]), (800.0, -1.0));
        // Two outputs per sample: the sample's loss is their mean.
        let (loss, _, _) = sigmoid_bce(1, &[0.0, 0.0], &[1.0, 0.0]);
        assert_close(
            "mean over outputs",
            &[loss],
            &[std::f64::consts::LN_2],
            1e-15,
            0.0,
        );
    }

    #[test]
    fn sigmoid_cross_entropy_gradient_matches_finite_differences() {
        let mut rng = Rng::new(62);
        for (n, cols) in [(1, 1), (5, 1), (3, 4)] {
            let z = rng.vec(n * cols, -4.0, 4.0);
            let t: Vec<f64> = (0..n * cols).map(|i| [0.0, 1.0, 0.3][i % 3]).collect();
            let (_, _, dz) = sigmoid_bce(n, &z, &t);
            assert_grad("dz", &z, &dz, |z| sigmoid_bce(n, z, &t).0 / n as f64);
        }
    }

    fn cce_probs(n: usize, k: usize, p: &[f64], t: &[f64]) -> (f64, Vec<f64>) {
        let mut dp = vec![f64::NAN; p.len()];
        let loss = categorical_cross_entropy_probs(n, k, p, t, &mut dp);
        (loss, dp)
    }

    fn bce_probs(n: usize, p: &[f64], t: &[f64]) -> (f64, Vec<f64>) {
        let mut dp = vec![f64::NAN; p.len()];
        let loss = binary_cross_entropy_probs(n, p, t, &mut dp);
        (loss, dp)
    }

    #[test]
    fn probability_losses_agree_with_the_fused_losses_inside_the_clip_range() {
        let mut rng = Rng::new(63);
        let (n, k) = (3, 5);
        let z = rng.vec(n * k, -2.0, 2.0);
        let t = one_hot(&mut rng, n, k);
        let (fused, p, _) = softmax_ce(n, k, &z, &t);
        assert_close("cce", &[cce_probs(n, k, &p, &t).0], &[fused], 1e-13, 0.0);
        let (fused, p, _) = sigmoid_bce(n, &z, &[1.0, 0.0, 0.5].repeat(5));
        assert_close(
            "bce",
            &[bce_probs(n, &p, &[1.0, 0.0, 0.5].repeat(5)).0],
            &[fused],
            1e-13,
            0.0,
        );
    }

    #[test]
    fn probability_losses_match_finite_differences_through_the_row_normalisation() {
        let mut rng = Rng::new(64);
        let (n, k) = (3, 4);
        // Unnormalised rows: Keras divides by the row sum first.
        let p = rng.vec(n * k, 0.1, 1.0);
        let t = rng.vec(n * k, 0.0, 1.0);
        let (_, dp) = cce_probs(n, k, &p, &t);
        assert_grad("cce dp", &p, &dp, |p| cce_probs(n, k, p, &t).0 / n as f64);
        let p = rng.vec(6, 0.05, 0.95);
        let t = [1.0, 0.0, 0.2, 1.0, 0.0, 0.7];
        let (_, dp) = bce_probs(2, &p, &t);
        assert_grad("bce dp", &p, &dp, |p| bce_probs(2, p, &t).0 / 2.0);
    }

    #[test]
    fn clipped_probabilities_give_bounded_loss_and_no_gradient() {
        let ln_eps = KERAS_EPSILON.ln();
        let (loss, dp) = cce_probs(1, 2, &[0.0, 1.0], &[1.0, 0.0]);
        assert_close("cce", &[loss], &[-ln_eps], 1e-12, 0.0);
        assert_eq!(dp, [0.0, 0.0]);
        let (loss, dp) = bce_probs(2, &[0.0, 1.0], &[1.0, 0.0]);
        assert_close("bce", &[loss], &[-2.0 * ln_eps], 1e-6, 0.0);
        assert_eq!(dp, [0.0, 0.0]);
        let (loss32, _) = {
            let mut dp = [f32::NAN; 2];
            (
                binary_cross_entropy_probs(2, &[0.0f32, 1.0], &[1.0, 0.0], &mut dp),
                dp,
            )
        };
        assert!(loss32.is_finite());
    }
}
