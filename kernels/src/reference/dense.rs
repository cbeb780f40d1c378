//! `Dense`: forward, input gradient and kernel gradient, kernel `[d_in, d_out]` (Keras order).
//!
//! Each is one [`gemv`] per row: the forward pass multiplies a sample by the kernel, the input
//! gradient multiplies `dy` by the transposed kernel, and the kernel gradient multiplies each
//! column of `x` (a row of `xᵀ`) by `dy`.

use super::Real;
use super::gemv::{gemv, transpose};

/// `y = x · w + bias`; `y` is overwritten.
///
/// # Shapes
/// - `x`: `[n, d_in]`, `w`: `[d_in, d_out]`, `bias`: `[d_out]`, `y`: `[n, d_out]`
pub fn dense_forward<T: Real>(
    n: usize,
    d_in: usize,
    d_out: usize,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) {
    check_shapes(n, d_in, d_out, x.len(), w.len(), y.len());
    if let Some(b) = bias {
        assert_eq!(b.len(), d_out, "dense bias must be [d_out]");
    }
    if d_out == 0 {
        return;
    }
    for (i, y_row) in y.chunks_exact_mut(d_out).enumerate() {
        match bias {
            Some(b) => y_row.copy_from_slice(b),
            None => y_row.fill(T::zero()),
        }
        gemv(y_row, &x[i * d_in..(i + 1) * d_in], w);
    }
}

/// `dx = dy · wᵀ`; overwritten.
///
/// # Shapes
/// - `dy`: `[n, d_out]`, `w`: `[d_in, d_out]`, `dx`: `[n, d_in]`
pub fn dense_backward_input<T: Real>(
    n: usize,
    d_in: usize,
    d_out: usize,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) {
    check_shapes(n, d_in, d_out, dx.len(), w.len(), dy.len());
    dx.fill(T::zero());
    if d_in == 0 {
        return;
    }
    let mut w_t = vec![T::zero(); w.len()];
    transpose(d_in, d_out, w, &mut w_t);
    for (i, dx_row) in dx.chunks_exact_mut(d_in).enumerate() {
        gemv(dx_row, &dy[i * d_out..(i + 1) * d_out], &w_t);
    }
}

/// `dw = xᵀ · dy`; overwritten (the caller sums the chunks of a split batch).
///
/// # Shapes
/// - `x`: `[n, d_in]`, `dy`: `[n, d_out]`, `dw`: `[d_in, d_out]`
pub fn dense_backward_weight<T: Real>(
    n: usize,
    d_in: usize,
    d_out: usize,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
) {
    check_shapes(n, d_in, d_out, x.len(), dw.len(), dy.len());
    dw.fill(T::zero());
    if d_out == 0 || n == 0 {
        return;
    }
    let mut x_t = vec![T::zero(); x.len()];
    transpose(n, d_in, x, &mut x_t);
    for (dw_row, x_col) in dw.chunks_exact_mut(d_out).zip(x_t.chunks_exact(n)) {
        gemv(dw_row, x_col, dy);
    }
}

fn check_shapes(n: usize, d_in: usize, d_out: usize, x: usize, w: usize, y: usize) {
    assert_eq!(x, n * d_in, "dense input must be [n, d_in]");
    assert_eq!(w, d_in * d_out, "dense kernel must be [d_in, d_out]");
    assert_eq!(y, n * d_out, "dense output must be [n, d_out]");
}

#[cfg(test)]
mod tests {
    use super::super::bias_backward;
    use super::super::testing::{Rng, assert_grad, dot};
    use super::*;

    fn forward(n: usize, d_in: usize, d_out: usize, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let mut y = vec![f64::NAN; n * d_out];
        dense_forward(n, d_in, d_out, x, w, Some(b), &mut y);
        y
    }

    #[test]
    fn forward_multiplies_by_the_kernel_in_keras_order() {
        // w = [[1, 2, 3], [4, 5, 6]] is [d_in = 2, d_out = 3].
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let y = forward(2, 2, 3, &[1.0, 2.0, 0.0, -1.0], &w, &[0.5, 0.0, -1.0]);
        assert_eq!(y, [9.5, 12.0, 14.0, -3.5, -5.0, -7.0]);
    }

    fn check_gradients(n: usize, d_in: usize, d_out: usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(n * d_in, -1.0, 1.0);
        let w = rng.vec(d_in * d_out, -1.0, 1.0);
        let b = rng.vec(d_out, -1.0, 1.0);
        let r = rng.vec(n * d_out, -1.0, 1.0);
        let loss = |x: &[f64], w: &[f64], b: &[f64]| dot(&r, &forward(n, d_in, d_out, x, w, b));

        let mut dx = vec![f64::NAN; x.len()];
        dense_backward_input(n, d_in, d_out, &r, &w, &mut dx);
        assert_grad("dx", &x, &dx, |x| loss(x, &w, &b));
        let mut dw = vec![f64::NAN; w.len()];
        dense_backward_weight(n, d_in, d_out, &x, &r, &mut dw);
        assert_grad("dw", &w, &dw, |w| loss(&x, w, &b));
        let mut db = vec![f64::NAN; b.len()];
        bias_backward(&r, d_out, &mut db);
        assert_grad("db", &b, &db, |b| loss(&x, &w, b));
    }

    #[test]
    fn gradients_match_finite_differences_for_batch_one() {
        check_gradients(1, 5, 3, 11);
    }

    #[test]
    fn gradients_match_finite_differences_for_batch_three_and_wide_outputs() {
        check_gradients(3, 7, 37, 12);
    }
}
