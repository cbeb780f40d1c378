//! Kernels that move or combine elements without a window: residual `Add`, `Dropout`, the bias
//! gradient, and `ZeroPadding2D` with its crop.

use super::Real;
use crate::geom::Padding2d;

/// `y = a + b` (residual `Add`). The gradient reaches both inputs unchanged.
///
/// # Shapes
/// - `a`, `b`, `y`: the same length
pub fn add_forward<T: Real>(a: &[T], b: &[T], y: &mut [T]) {
    assert_eq!(a.len(), y.len(), "add: a and y must have the same length");
    assert_eq!(b.len(), y.len(), "add: b and y must have the same length");
    for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
        *y = a + b;
    }
}

/// `db[ch] = Σ_rows dy[row, ch]`, the gradient of a bias over the last axis; overwritten.
///
/// # Shapes
/// - `dy`: `[rows, c]`, `db`: `[c]`
pub fn bias_backward<T: Real>(dy: &[T], c: usize, db: &mut [T]) {
    assert_eq!(db.len(), c, "bias gradient must be [c]");
    db.fill(T::zero());
    if c == 0 {
        return;
    }
    assert!(dy.len().is_multiple_of(c), "dy must be [rows, c]");
    for row in dy.chunks_exact(c) {
        for (d, &v) in db.iter_mut().zip(row) {
            *d += v;
        }
    }
}

/// `y = x ⊙ mask`, where the runtime draws `mask` with entries `0` (dropped) or
/// `1 / (1 - rate)` (kept, inverted dropout as Keras).
///
/// # Shapes
/// - `x`, `mask`, `y`: the same length
pub fn dropout_forward<T: Real>(x: &[T], mask: &[T], y: &mut [T]) {
    assert_eq!(
        x.len(),
        y.len(),
        "dropout: x and y must have the same length"
    );
    assert_eq!(
        mask.len(),
        y.len(),
        "dropout: mask and y must have the same length"
    );
    for ((y, &x), &m) in y.iter_mut().zip(x).zip(mask) {
        *y = x * m;
    }
}

/// `dx = dy ⊙ mask`, with the mask of the forward pass.
///
/// # Shapes
/// - `dy`, `mask`, `dx`: the same length
pub fn dropout_backward<T: Real>(dy: &[T], mask: &[T], dx: &mut [T]) {
    dropout_forward(dy, mask, dx);
}

/// `y`: `x` surrounded by zeros (`ZeroPadding2D`); overwritten.
///
/// # Shapes
/// - `x`: `[n, h, w, c]`
/// - `y`: `[n, pad.top + h + pad.bottom, pad.left + w + pad.right, c]`
pub fn zero_pad_forward<T: Real>(
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    pad: Padding2d,
    x: &[T],
    y: &mut [T],
) {
    let (y_h, y_w) = padded_size(n, h, w, c, pad, x.len(), y.len());
    y.fill(T::zero());
    let row = w * c;
    if row == 0 {
        return;
    }
    for (i, x_row) in x.chunks_exact(row).enumerate() {
        let (img, r) = (i / h, i % h);
        let start = ((img * y_h + pad.top + r) * y_w + pad.left) * c;
        y[start..start + row].copy_from_slice(x_row);
    }
}

/// `dx`: the centre of `dy`, cropping the padding away (the gradient of [`zero_pad_forward`]);
/// overwritten.
///
/// # Shapes
/// - `dy`: `[n, pad.top + h + pad.bottom, pad.left + w + pad.right, c]`
/// - `dx`: `[n, h, w, c]`
pub fn zero_pad_backward<T: Real>(
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    pad: Padding2d,
    dy: &[T],
    dx: &mut [T],
) {
    let (y_h, y_w) = padded_size(n, h, w, c, pad, dx.len(), dy.len());
    let row = w * c;
    if row == 0 {
        return;
    }
    for (i, dx_row) in dx.chunks_exact_mut(row).enumerate() {
        let (img, r) = (i / h, i % h);
        let start = ((img * y_h + pad.top + r) * y_w + pad.left) * c;
        dx_row.copy_from_slice(&dy[start..start + row]);
    }
}

fn padded_size(
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    pad: Padding2d,
    x_len: usize,
    y_len: usize,
) -> (usize, usize) {
    let (y_h, y_w) = (pad.top + h + pad.bottom, pad.left + w + pad.right);
    assert_eq!(
        x_len,
        n * h * w * c,
        "zero padding: input must be [n, h, w, c]"
    );
    assert_eq!(
        y_len,
        n * y_h * y_w * c,
        "zero padding: output must be the padded size"
    );
    (y_h, y_w)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Rng, assert_grad, dot};
    use super::*;

    #[test]
    fn add_sums_element_wise() {
        let mut y = [0.0; 3];
        add_forward(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0], &mut y);
        assert_eq!(y, [11.0, 22.0, 33.0]);
    }

    #[test]
    fn bias_gradient_sums_over_rows_and_overwrites() {
        let mut db = [100.0; 2];
        bias_backward(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, &mut db);
        assert_eq!(db, [9.0, 12.0]);
    }

    #[test]
    fn dropout_scales_kept_elements_and_zeroes_dropped_ones() {
        let mask = [0.0, 2.0, 2.0, 0.0];
        let mut y = [f64::NAN; 4];
        dropout_forward(&[1.0, 2.0, 3.0, 4.0], &mask, &mut y);
        assert_eq!(y, [0.0, 4.0, 6.0, 0.0]);
        let mut dx = [f64::NAN; 4];
        dropout_backward(&[1.0, 1.0, 1.0, 1.0], &mask, &mut dx);
        assert_eq!(dx, mask);
    }

    #[test]
    fn zero_padding_surrounds_each_image_and_its_gradient_crops() {
        let pad = Padding2d {
            top: 1,
            bottom: 0,
            left: 0,
            right: 2,
        };
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut y = [f64::NAN; 16];
        // Two 1x2x1 images become two 2x4x1 images.
        zero_pad_forward(2, 1, 2, 1, pad, &x, &mut y);
        let first = [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0];
        let second = [0.0, 0.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0];
        assert_eq!(y, [first, second].concat()[..]);

        let (n, h, w, c) = (3, 3, 2, 2);
        let pad = Padding2d {
            top: 2,
            bottom: 1,
            left: 1,
            right: 0,
        };
        let mut rng = Rng::new(5);
        let x = rng.vec(n * h * w * c, -1.0, 1.0);
        let r = rng.vec(n * 6 * 3 * c, -1.0, 1.0);
        let mut dx = vec![f64::NAN; x.len()];
        zero_pad_backward(n, h, w, c, pad, &r, &mut dx);
        assert_grad("dx", &x, &dx, |x| {
            let mut y = vec![f64::NAN; r.len()];
            zero_pad_forward(n, h, w, c, pad, x, &mut y);
            dot(&r, &y)
        });
    }
}
