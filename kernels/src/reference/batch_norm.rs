//! `BatchNormalization` over the last axis: training forward (batch statistics, biased variance
//! as Keras), inference forward (moving statistics), both backwards, and the moving-average
//! update.
//!
//! Batch statistics need the whole batch: unlike the other kernels these must not be called on
//! chunks of a split batch. Every loop runs rows outside and channels inside, so the per-channel
//! sums vectorise.

use super::Real;

/// Normalises with the batch's own statistics: `mean_out`, `var_out` (biased, divided by
/// `rows`) are written for the backward pass and the moving averages; `y` is overwritten.
///
/// # Shapes
/// - `x`, `y`: `[rows, c]` (`rows = n·h·w` for images); `gamma`, `beta`, `mean_out`,
///   `var_out`: `[c]`
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_train<T: Real>(
    rows: usize,
    c: usize,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    eps: T,
    y: &mut [T],
    mean_out: &mut [T],
    var_out: &mut [T],
) {
    check_shapes(
        rows,
        c,
        x.len(),
        y.len(),
        &[gamma.len(), beta.len(), mean_out.len(), var_out.len()],
    );
    mean_out.fill(T::zero());
    var_out.fill(T::zero());
    if c == 0 || rows == 0 {
        return;
    }
    let scale = T::one() / T::from_usize(rows);
    for row in x.chunks_exact(c) {
        for (m, &v) in mean_out.iter_mut().zip(row) {
            *m += v;
        }
    }
    mean_out.iter_mut().for_each(|m| *m *= scale);
    // Two passes: Σ(x - mean)² does not cancel catastrophically as Σx² - rows·mean² can.
    for row in x.chunks_exact(c) {
        for ((s, &v), &m) in var_out.iter_mut().zip(row).zip(mean_out.iter()) {
            *s += (v - m) * (v - m);
        }
    }
    var_out.iter_mut().for_each(|s| *s *= scale);
    batch_norm_forward_infer(rows, c, x, gamma, beta, mean_out, var_out, eps, y);
}

/// Normalises with given (moving) statistics: `y = γ·(x - mean)/√(var + eps) + β`; overwritten.
///
/// # Shapes
/// - `x`, `y`: `[rows, c]`; `gamma`, `beta`, `mean`, `var`: `[c]`
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_infer<T: Real>(
    rows: usize,
    c: usize,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    var: &[T],
    eps: T,
    y: &mut [T],
) {
    check_shapes(
        rows,
        c,
        x.len(),
        y.len(),
        &[gamma.len(), beta.len(), mean.len(), var.len()],
    );
    if c == 0 {
        return;
    }
    let scale = channel_scale(gamma, var, eps);
    // y = x·scale + shift, with shift = β - mean·scale.
    let shift: Vec<T> = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((&b, &m), &s)| b - m * s)
        .collect();
    for (y_row, x_row) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        for (((y, &x), &s), &t) in y_row.iter_mut().zip(x_row).zip(&scale).zip(&shift) {
            *y = x * s + t;
        }
    }
}

/// The training-mode backward, through the batch statistics: `dx` (overwritten) and the
/// parameter gradients `dgamma = Σ dy·x̂`, `dbeta = Σ dy` (overwritten), where `mean` and `var`
/// are the batch statistics [`batch_norm_forward_train`] wrote.
///
/// # Shapes
/// - `x`, `dy`, `dx`: `[rows, c]`; `gamma`, `mean`, `var`, `dgamma`, `dbeta`: `[c]`
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward<T: Real>(
    rows: usize,
    c: usize,
    x: &[T],
    dy: &[T],
    gamma: &[T],
    mean: &[T],
    var: &[T],
    eps: T,
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
) {
    let params = [
        gamma.len(),
        mean.len(),
        var.len(),
        dgamma.len(),
        dbeta.len(),
    ];
    check_shapes(rows, c, x.len(), dx.len(), &params);
    assert_eq!(dy.len(), dx.len(), "batch norm: dy must be [rows, c]");
    dgamma.fill(T::zero());
    dbeta.fill(T::zero());
    if c == 0 || rows == 0 {
        return;
    }
    let inv_std: Vec<T> = var.iter().map(|&v| T::one() / (v + eps).sqrt()).collect();
    // Accumulate Σ dy and Σ dy·(x - mean); scale the latter by 1/σ afterwards.
    for (x_row, dy_row) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
        let params = dgamma.iter_mut().zip(dbeta.iter_mut()).zip(mean);
        for (((dg, db), &m), (&x, &dy)) in params.zip(x_row.iter().zip(dy_row)) {
            *db += dy;
            *dg += dy * (x - m);
        }
    }
    dgamma
        .iter_mut()
        .zip(&inv_std)
        .for_each(|(dg, &s)| *dg *= s);
    // dx = γ/σ · (dy - dβ/rows - x̂·dγ/rows)
    let per_row = T::one() / T::from_usize(rows);
    let k: Vec<T> = gamma.iter().zip(&inv_std).map(|(&g, &s)| g * s).collect();
    let mean_dy: Vec<T> = dbeta.iter().map(|&d| d * per_row).collect();
    let xhat_coef: Vec<T> = dgamma
        .iter()
        .zip(&inv_std)
        .map(|(&dg, &s)| dg * per_row * s)
        .collect();
    for ((dx_row, x_row), dy_row) in dx
        .chunks_exact_mut(c)
        .zip(x.chunks_exact(c))
        .zip(dy.chunks_exact(c))
    {
        let coefs = k.iter().zip(&mean_dy).zip(&xhat_coef).zip(mean);
        for (((dx, &x), &dy), (((&k, &mdy), &xc), &m)) in
            dx_row.iter_mut().zip(x_row).zip(dy_row).zip(coefs)
        {
            *dx = k * (dy - mdy - (x - m) * xc);
        }
    }
}

/// The backward of [`batch_norm_forward_infer`] (a frozen layer, statistics held constant):
/// `dx = dy·γ/√(var + eps)`; overwritten.
///
/// # Shapes
/// - `dy`, `dx`: `[rows, c]`; `gamma`, `var`: `[c]`
pub fn batch_norm_backward_infer<T: Real>(
    rows: usize,
    c: usize,
    dy: &[T],
    gamma: &[T],
    var: &[T],
    eps: T,
    dx: &mut [T],
) {
    check_shapes(rows, c, dy.len(), dx.len(), &[gamma.len(), var.len()]);
    if c == 0 {
        return;
    }
    let scale = channel_scale(gamma, var, eps);
    for (dx_row, dy_row) in dx.chunks_exact_mut(c).zip(dy.chunks_exact(c)) {
        for ((dx, &dy), &s) in dx_row.iter_mut().zip(dy_row).zip(&scale) {
            *dx = dy * s;
        }
    }
}

/// Keras's moving-average update after a training step:
/// `moving = moving·momentum + batch·(1 - momentum)` (Keras's default momentum is 0.99).
///
/// # Shapes
/// - all `[c]`
pub fn batch_norm_update_moving_stats<T: Real>(
    momentum: T,
    mean: &[T],
    var: &[T],
    moving_mean: &mut [T],
    moving_var: &mut [T],
) {
    assert_eq!(
        mean.len(),
        moving_mean.len(),
        "batch norm: mean and moving mean must be [c]"
    );
    assert_eq!(
        var.len(),
        moving_var.len(),
        "batch norm: var and moving var must be [c]"
    );
    let keep = T::one() - momentum;
    for (mv, &b) in moving_mean
        .iter_mut()
        .zip(mean)
        .chain(moving_var.iter_mut().zip(var))
    {
        *mv = *mv * momentum + b * keep;
    }
}

fn channel_scale<T: Real>(gamma: &[T], var: &[T], eps: T) -> Vec<T> {
    gamma
        .iter()
        .zip(var)
        .map(|(&g, &v)| g / (v + eps).sqrt())
        .collect()
}

fn check_shapes(rows: usize, c: usize, x_len: usize, y_len: usize, params: &[usize]) {
    assert_eq!(x_len, rows * c, "batch norm input must be [rows, c]");
    assert_eq!(y_len, rows * c, "batch norm output must be [rows, c]");
    assert!(
        params.iter().all(|&len| len == c),
        "batch norm parameters must be [c]"
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Rng, assert_close, assert_grad, dot};
    use super::*;

    #[test]
    fn training_forward_uses_batch_mean_and_biased_variance() {
        // Channel 0: mean 2.5, biased variance 1.25, so √(1.25 + 2.75) = 2. Channel 1: constant.
        let x = [1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0];
        let (mut y, mut mean, mut var) = ([f64::NAN; 8], [f64::NAN; 2], [f64::NAN; 2]);
        batch_norm_forward_train(
            4,
            2,
            &x,
            &[2.0, 1.0],
            &[0.5, -1.0],
            2.75,
            &mut y,
            &mut mean,
            &mut var,
        );
        assert_eq!(mean, [2.5, 0.0]);
        assert_eq!(var, [1.25, 0.0]);
        assert_eq!(y, [-1.0, -1.0, 0.0, -1.0, 1.0, -1.0, 2.0, -1.0]);
    }

    #[test]
    fn inference_forward_uses_the_given_statistics() {
        let mut y = [f64::NAN; 2];
        batch_norm_forward_infer(
            1,
            2,
            &[5.0, 1.0],
            &[1.0, 2.0],
            &[0.0, 1.0],
            &[1.0, -1.0],
            &[3.0, 0.0],
            1.0,
            &mut y,
        );
        assert_eq!(y, [2.0, 5.0]);
    }

    #[test]
    fn moving_statistics_follow_keras_momentum() {
        let (mut mm, mut mv) = ([0.0, 1.0], [1.0, 1.0]);
        batch_norm_update_moving_stats(0.75, &[4.0, 5.0], &[9.0, 1.0], &mut mm, &mut mv);
        assert_eq!(mm, [1.0, 2.0]);
        assert_eq!(mv, [3.0, 1.0]);
    }

    fn train_forward(
        rows: usize,
        c: usize,
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        eps: f64,
    ) -> Vec<f64> {
        let (mut y, mut mean, mut var) = (vec![f64::NAN; x.len()], vec![0.0; c], vec![0.0; c]);
        batch_norm_forward_train(rows, c, x, gamma, beta, eps, &mut y, &mut mean, &mut var);
        y
    }

    fn check_train(rows: usize, c: usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(rows * c, -2.0, 2.0);
        let gamma = rng.vec(c, 0.5, 1.5);
        let beta = rng.vec(c, -1.0, 1.0);
        let r = rng.vec(rows * c, -1.0, 1.0);
        let eps = 1e-3;
        let (mut y, mut mean, mut var) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
        batch_norm_forward_train(rows, c, &x, &gamma, &beta, eps, &mut y, &mut mean, &mut var);
        let (mut dx, mut dgamma, mut dbeta) = (
            vec![f64::NAN; x.len()],
            vec![f64::NAN; c],
            vec![f64::NAN; c],
        );
        batch_norm_backward(
            rows,
            c,
            &x,
            &r,
            &gamma,
            &mean,
            &var,
            eps,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );
        let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| {
            dot(&r, &train_forward(rows, c, x, gamma, beta, eps))
        };
        assert_grad("dx", &x, &dx, |x| loss(x, &gamma, &beta));
        assert_grad("dgamma", &gamma, &dgamma, |gamma| loss(&x, gamma, &beta));
        assert_grad("dbeta", &beta, &dbeta, |beta| loss(&x, &gamma, beta));
    }

    #[test]
    fn training_backward_matches_finite_differences_through_batch_statistics() {
        check_train(7, 3, 51);
        check_train(2, 5, 52);
    }

    #[test]
    fn inference_backward_matches_finite_differences_with_frozen_statistics() {
        let (rows, c) = (5, 3);
        let mut rng = Rng::new(53);
        let x = rng.vec(rows * c, -2.0, 2.0);
        let (gamma, beta) = (rng.vec(c, 0.5, 1.5), rng.vec(c, -1.0, 1.0));
        let (mean, var) = (rng.vec(c, -1.0, 1.0), rng.vec(c, 0.1, 2.0));
        let r = rng.vec(rows * c, -1.0, 1.0);
        let mut dx = vec![f64::NAN; x.len()];
        batch_norm_backward_infer(rows, c, &r, &gamma, &var, 1e-3, &mut dx);
        assert_grad("dx", &x, &dx, |x| {
            let mut y = vec![f64::NAN; x.len()];
            batch_norm_forward_infer(rows, c, x, &gamma, &beta, &mean, &var, 1e-3, &mut y);
            dot(&r, &y)
        });
        // Training-mode forward on the same batch agrees with inference on its own statistics.
        let (mut y, mut m, mut v) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
        batch_norm_forward_train(rows, c, &x, &gamma, &beta, 1e-3, &mut y, &mut m, &mut v);
        let mut y_infer = vec![f64::NAN; x.len()];
        batch_norm_forward_infer(rows, c, &x, &gamma, &beta, &m, &v, 1e-3, &mut y_infer);
        assert_close("train vs infer", &y, &y_infer, 0.0, 0.0);
    }
}
