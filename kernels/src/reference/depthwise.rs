//! `DepthwiseConv2D`: forward, input gradient and kernel gradient.
//!
//! The kernel is `[k_h, k_w, c_in, mult]` and output channel `ci·mult + m` sees only input
//! channel `ci`, so a kernel tap is a `[c_out]` row matching an output pixel's channels: every
//! loop is an element-wise multiply-add over contiguous channels, per (output pixel, tap).

use super::{Real, window_taps};
use crate::geom::Conv2dGeom;

/// `y = depthwise(x, w) + bias`, zero padding; `y` is overwritten.
///
/// # Shapes
/// - `x`: `[n, h, w, c_in]`, `w`: `[k_h, k_w, c_in, mult]`, `bias`: `[c_out]`
/// - `y`: `[n, out_h, out_w, c_out]` with `c_out = c_in · mult`
pub fn depthwise_forward<T: Real>(
    g: &Conv2dGeom,
    mult: usize,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
) {
    check_shapes(g, mult, x.len(), w.len(), y.len());
    if let Some(b) = bias {
        assert_eq!(b.len(), g.c_out, "depthwise bias must be [c_out]");
    }
    if y.is_empty() {
        return;
    }
    for y_px in y.chunks_exact_mut(g.c_out) {
        match bias {
            Some(b) => y_px.copy_from_slice(b),
            None => y_px.fill(T::zero()),
        }
    }
    let (c_in, c_out) = (g.c_in, g.c_out);
    for_each_tap(g, |p, tap, q| {
        let y_px = &mut y[p * c_out..(p + 1) * c_out];
        let x_px = &x[q * c_in..(q + 1) * c_in];
        let w_tap = &w[tap * c_out..(tap + 1) * c_out];
        if mult == 1 {
            for ((y, &x), &w) in y_px.iter_mut().zip(x_px).zip(w_tap) {
                *y += x * w;
            }
        } else {
            let rows = y_px.chunks_exact_mut(mult).zip(w_tap.chunks_exact(mult));
            for ((y_c, w_c), &x) in rows.zip(x_px) {
                for (y, &w) in y_c.iter_mut().zip(w_c) {
                    *y += x * w;
                }
            }
        }
    });
}

/// `dx`: the gradient with respect to the input; overwritten.
///
/// # Shapes
/// - `dy`: `[n, out_h, out_w, c_out]`, `w`: `[k_h, k_w, c_in, mult]`, `dx`: `[n, h, w, c_in]`
pub fn depthwise_backward_input<T: Real>(
    g: &Conv2dGeom,
    mult: usize,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) {
    check_shapes(g, mult, dx.len(), w.len(), dy.len());
    dx.fill(T::zero());
    if dy.is_empty() || dx.is_empty() {
        return;
    }
    let (c_in, c_out) = (g.c_in, g.c_out);
    for_each_tap(g, |p, tap, q| {
        let dy_px = &dy[p * c_out..(p + 1) * c_out];
        let dx_px = &mut dx[q * c_in..(q + 1) * c_in];
        let w_tap = &w[tap * c_out..(tap + 1) * c_out];
        if mult == 1 {
            for ((dx, &dy), &w) in dx_px.iter_mut().zip(dy_px).zip(w_tap) {
                *dx += dy * w;
            }
        } else {
            let rows = dy_px.chunks_exact(mult).zip(w_tap.chunks_exact(mult));
            for ((dy_c, w_c), dx) in rows.zip(dx_px) {
                *dx += dy_c.iter().zip(w_c).map(|(&dy, &w)| dy * w).sum::<T>();
            }
        }
    });
}

/// `dw`: the gradient with respect to the kernel; overwritten (the caller sums the chunks of a
/// split batch).
///
/// # Shapes
/// - `x`: `[n, h, w, c_in]`, `dy`: `[n, out_h, out_w, c_out]`, `dw`: `[k_h, k_w, c_in, mult]`
pub fn depthwise_backward_weight<T: Real>(
    g: &Conv2dGeom,
    mult: usize,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
) {
    check_shapes(g, mult, x.len(), dw.len(), dy.len());
    dw.fill(T::zero());
    if dy.is_empty() || x.is_empty() {
        return;
    }
    let (c_in, c_out) = (g.c_in, g.c_out);
    for_each_tap(g, |p, tap, q| {
        let dy_px = &dy[p * c_out..(p + 1) * c_out];
        let x_px = &x[q * c_in..(q + 1) * c_in];
        let dw_tap = &mut dw[tap * c_out..(tap + 1) * c_out];
        if mult == 1 {
            for ((dw, &dy), &x) in dw_tap.iter_mut().zip(dy_px).zip(x_px) {
                *dw += dy * x;
            }
        } else {
            let rows = dw_tap.chunks_exact_mut(mult).zip(dy_px.chunks_exact(mult));
            for ((dw_c, dy_c), &x) in rows.zip(x_px) {
                for (dw, &dy) in dw_c.iter_mut().zip(dy_c) {
                    *dw += x * dy;
                }
            }
        }
    });
}

fn check_shapes(g: &Conv2dGeom, mult: usize, x_len: usize, w_len: usize, y_len: usize) {
    assert_eq!(
        g.c_out,
        g.c_in * mult,
        "depthwise needs c_out = c_in · mult"
    );
    assert_eq!(
        x_len,
        g.input_len(),
        "depthwise input must be [n, h, w, c_in]"
    );
    assert_eq!(
        w_len,
        g.k_h * g.k_w * g.c_out,
        "depthwise kernel must be [k_h, k_w, c_in, mult]"
    );
    assert_eq!(
        y_len,
        g.output_len(),
        "depthwise output must be [n, out_h, out_w, c_out]"
    );
}

/// Calls `f(p, tap, q)` for every output pixel `p` (flat over `n, out_h, out_w`) and every tap
/// `tap = kh·k_w + kw` of its window that reads input pixel `q` (flat over `n, h, w`).
fn for_each_tap(g: &Conv2dGeom, mut f: impl FnMut(usize, usize, usize)) {
    for img in 0..g.n {
        for oh in 0..g.out_h {
            let (kh0, kh1, ih0) = window_taps(oh, g.stride_h, g.pad.top, g.h, g.k_h);
            for ow in 0..g.out_w {
                let (kw0, kw1, iw0) = window_taps(ow, g.stride_w, g.pad.left, g.w, g.k_w);
                let p = (img * g.out_h + oh) * g.out_w + ow;
                for kh in kh0..kh1 {
                    let row = (img * g.h + ih0 + kh - kh0) * g.w;
                    for kw in kw0..kw1 {
                        f(p, kh * g.k_w + kw, row + iw0 + kw - kw0);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv2d_forward;
    use super::super::testing::{Rng, assert_close, assert_grad, dot};
    use super::*;
    use crate::geom::Padding2d;

    fn forward(g: &Conv2dGeom, mult: usize, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let mut y = vec![f64::NAN; g.output_len()];
        depthwise_forward(g, mult, x, w, b, &mut y);
        y
    }

    /// The depthwise kernel as a full HWIO kernel that is zero off the channel blocks.
    fn as_full_kernel(g: &Conv2dGeom, mult: usize, w: &[f64]) -> Vec<f64> {
        let mut full = vec![0.0; g.k_h * g.k_w * g.c_in * g.c_out];
        for tap in 0..g.k_h * g.k_w {
            for ci in 0..g.c_in {
                for m in 0..mult {
                    let co = ci * mult + m;
                    full[(tap * g.c_in + ci) * g.c_out + co] = w[tap * g.c_out + co];
                }
            }
        }
        full
    }

    #[test]
    fn each_output_channel_sees_only_its_input_channel() {
        let g = Conv2dGeom::new(1, (1, 1, 2), (1, 1), 4, (1, 1), Padding2d::default()).unwrap();
        // w[ci][m] = [[1, 2], [3, 4]]; output channel ci·2 + m.
        let y = forward(
            &g,
            2,
            &[1.0, 10.0],
            &[1.0, 2.0, 3.0, 4.0],
            Some(&[0.0, 0.0, 0.0, 0.5]),
        );
        assert_eq!(y, [1.0, 2.0, 30.0, 40.5]);
    }

    fn check(g: Conv2dGeom, mult: usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(g.input_len(), -1.0, 1.0);
        let w = rng.vec(g.k_h * g.k_w * g.c_out, -1.0, 1.0);
        let b = rng.vec(g.c_out, -1.0, 1.0);
        let r = rng.vec(g.output_len(), -1.0, 1.0);

        let mut full = vec![f64::NAN; g.output_len()];
        conv2d_forward(&g, &x, &as_full_kernel(&g, mult, &w), Some(&b), &mut full);
        assert_close(
            "forward vs block-diagonal conv",
            &forward(&g, mult, &x, &w, Some(&b)),
            &full,
            1e-12,
            1e-12,
        );

        let mut dx = vec![f64::NAN; x.len()];
        depthwise_backward_input(&g, mult, &r, &w, &mut dx);
        assert_grad("dx", &x, &dx, |x| {
            dot(&r, &forward(&g, mult, x, &w, Some(&b)))
        });
        let mut dw = vec![f64::NAN; w.len()];
        depthwise_backward_weight(&g, mult, &x, &r, &mut dw);
        assert_grad("dw", &w, &dw, |w| {
            dot(&r, &forward(&g, mult, &x, w, Some(&b)))
        });
    }

    #[test]
    fn multiplier_two_at_stride_two_with_same_padding_matches_finite_differences() {
        let pad = Padding2d::same(7, 6, 3, 3, 2, 2);
        let g = Conv2dGeom::new(3, (7, 6, 3), (3, 3), 6, (2, 2), pad).unwrap();
        check(g, 2, 21);
    }

    #[test]
    fn multiplier_one_with_asymmetric_padding_matches_finite_differences() {
        let pad = Padding2d {
            top: 0,
            bottom: 2,
            left: 1,
            right: 0,
        };
        let g = Conv2dGeom::new(1, (5, 4, 5), (2, 3), 5, (1, 1), pad).unwrap();
        check(g, 1, 22);
    }

    #[test]
    fn multiplier_three_with_odd_channels_matches_finite_differences() {
        let g = Conv2dGeom::new(2, (4, 5, 3), (3, 2), 9, (1, 2), Padding2d::symmetric(1)).unwrap();
        check(g, 3, 23);
    }
}
