//! Pooling: `MaxPooling2D` (with the argmax its backward needs), `AveragePooling2D`, and
//! `GlobalAveragePooling2D`, forward and backward.
//!
//! Padded positions never win a max-pool and are not counted by an average (Keras `same`). A
//! window that lies entirely in padding (possible only with explicit padding at least as large
//! as the window) outputs zero, and its max-pool argmax is `u32::MAX`, which the backward skips.

use std::ops::Range;

use super::{Real, window_taps};
use crate::geom::Pool2dGeom;

/// `y`: the maximum of each window; overwritten. `argmax`, when given, receives for each output
/// element the flat index into `x` (as given: a chunk's own slice) of the winning element; ties
/// go to the first in row-major window order.
///
/// # Shapes
/// - `x`: `[n, h, w, c]` with fewer than `u32::MAX` elements
/// - `y`, `argmax`: `[n, out_h, out_w, c]`
pub fn max_pool_forward<T: Real>(g: &Pool2dGeom, x: &[T], y: &mut [T], argmax: Option<&mut [u32]>) {
    check_shapes(g, x.len(), y.len());
    assert!(
        x.len() < u32::MAX as usize,
        "max pool input too large for u32 argmax"
    );
    let c = g.c;
    if y.is_empty() {
        return;
    }
    match argmax {
        Some(arg) => {
            assert_eq!(
                arg.len(),
                y.len(),
                "max pool argmax must be [n, out_h, out_w, c]"
            );
            let mut taps = Vec::with_capacity(g.k_h * g.k_w);
            let wide = c - c % LANES;
            for_each_window(g, |p, img, rows, cols| {
                let y_px = &mut y[p * c..(p + 1) * c];
                let a_px = &mut arg[p * c..(p + 1) * c];
                taps.clear();
                for ih in rows {
                    taps.extend(cols.clone().map(|iw| ((img * g.h + ih) * g.w + iw) * c));
                }
                if taps.is_empty() {
                    y_px.fill(T::zero());
                    a_px.fill(u32::MAX);
                    return;
                }
                let (y_wide, y_tail) = y_px.split_at_mut(wide);
                let (a_wide, a_tail) = a_px.split_at_mut(wide);
                let lanes = y_wide
                    .chunks_exact_mut(LANES)
                    .zip(a_wide.chunks_exact_mut(LANES));
                for (ch0, (y_l, a_l)) in (0..).step_by(LANES).zip(lanes) {
                    max_lanes::<T, LANES>(x, &taps, ch0, y_l, a_l);
                }
                let tail = y_tail.chunks_exact_mut(1).zip(a_tail.chunks_exact_mut(1));
                for (ch0, (y_l, a_l)) in (wide..).zip(tail) {
                    max_lanes::<T, 1>(x, &taps, ch0, y_l, a_l);
                }
            });
        }
        None => for_each_window(g, |p, img, rows, cols| {
            let y_px = &mut y[p * c..(p + 1) * c];
            y_px.fill(T::zero());
            let mut first = true;
            for ih in rows {
                for iw in cols.clone() {
                    let q = ((img * g.h + ih) * g.w + iw) * c;
                    let x_px = &x[q..q + c];
                    if first {
                        y_px.copy_from_slice(x_px);
                        first = false;
                        continue;
                    }
                    for (y, &x) in y_px.iter_mut().zip(x_px) {
                        *y = if x > *y { x } else { *y };
                    }
                }
            }
        }),
    }
}

/// Channels processed together by the argmax max-pool: the running maximum and argmax live in
/// local arrays, so the selects stay in registers and vectorise.
const LANES: usize = 8;

/// The maximum and argmax of channels `ch0..ch0 + L` over the window whose pixels start at the
/// offsets `taps` (non-empty, row-major): strict `>` keeps the first of equal values.
#[inline(always)]
fn max_lanes<T: Real, const L: usize>(
    x: &[T],
    taps: &[usize],
    ch0: usize,
    y: &mut [T],
    a: &mut [u32],
) {
    let mut best = [T::zero(); L];
    let mut win = [0u32; L];
    let Some((&first, rest)) = taps.split_first() else {
        return;
    };
    best.copy_from_slice(&x[first + ch0..first + ch0 + L]);
    // Offsets fit in u32: the input has fewer than u32::MAX elements.
    win.fill(first as u32);
    for &q in rest {
        let xs = &x[q + ch0..q + ch0 + L];
        let q = q as u32;
        for ((b, w), &v) in best.iter_mut().zip(win.iter_mut()).zip(xs) {
            let take = v > *b;
            *w = if take { q } else { *w };
            *b = if take { v } else { *b };
        }
    }
    y.copy_from_slice(&best);
    for ((a, &w), ch) in a.iter_mut().zip(&win).zip(ch0 as u32..) {
        *a = w + ch;
    }
}

/// `dx`: each `dy` routed to its window's winner (from [`max_pool_forward`]'s `argmax`);
/// overwritten. Overlapping windows that share a winner accumulate.
///
/// # Shapes
/// - `argmax`, `dy`: `[n, out_h, out_w, c]`, `dx`: `[n, h, w, c]`
pub fn max_pool_backward<T: Real>(g: &Pool2dGeom, argmax: &[u32], dy: &[T], dx: &mut [T]) {
    check_shapes(g, dx.len(), dy.len());
    assert_eq!(
        argmax.len(),
        dy.len(),
        "max pool argmax must be [n, out_h, out_w, c]"
    );
    dx.fill(T::zero());
    for (&a, &d) in argmax.iter().zip(dy) {
        if let Some(t) = dx.get_mut(a as usize) {
            *t += d;
        }
    }
}

/// `y`: the mean of each window over the positions inside the input; overwritten.
///
/// # Shapes
/// - `x`: `[n, h, w, c]`, `y`: `[n, out_h, out_w, c]`
pub fn avg_pool_forward<T: Real>(g: &Pool2dGeom, x: &[T], y: &mut [T]) {
    check_shapes(g, x.len(), y.len());
    let c = g.c;
    if y.is_empty() {
        return;
    }
    for_each_window(g, |p, img, rows, cols| {
        let y_px = &mut y[p * c..(p + 1) * c];
        y_px.fill(T::zero());
        let count = rows.len() * cols.len();
        for ih in rows {
            for iw in cols.clone() {
                let q = ((img * g.h + ih) * g.w + iw) * c;
                for (y, &x) in y_px.iter_mut().zip(&x[q..q + c]) {
                    *y += x;
                }
            }
        }
        if count > 0 {
            let scale = T::one() / T::from_usize(count);
            y_px.iter_mut().for_each(|y| *y *= scale);
        }
    });
}

/// `dx`: each `dy` spread evenly over the positions its window counted; overwritten.
///
/// # Shapes
/// - `dy`: `[n, out_h, out_w, c]`, `dx`: `[n, h, w, c]`
pub fn avg_pool_backward<T: Real>(g: &Pool2dGeom, dy: &[T], dx: &mut [T]) {
    check_shapes(g, dx.len(), dy.len());
    dx.fill(T::zero());
    let c = g.c;
    if dy.is_empty() {
        return;
    }
    for_each_window(g, |p, img, rows, cols| {
        let count = rows.len() * cols.len();
        if count == 0 {
            return;
        }
        let scale = T::one() / T::from_usize(count);
        let dy_px = &dy[p * c..(p + 1) * c];
        for ih in rows {
            for iw in cols.clone() {
                let q = ((img * g.h + ih) * g.w + iw) * c;
                for (dx, &dy) in dx[q..q + c].iter_mut().zip(dy_px) {
                    *dx += dy * scale;
                }
            }
        }
    });
}

/// `y[img, ch]`: the mean of `x[img, ·, ch]` over the `hw` positions; overwritten.
///
/// # Shapes
/// - `x`: `[n, hw, c]` (`hw = h · w`), `y`: `[n, c]`
pub fn global_avg_pool_forward<T: Real>(n: usize, hw: usize, c: usize, x: &[T], y: &mut [T]) {
    assert_eq!(
        x.len(),
        n * hw * c,
        "global average pool input must be [n, h·w, c]"
    );
    assert_eq!(y.len(), n * c, "global average pool output must be [n, c]");
    y.fill(T::zero());
    if c == 0 || hw == 0 {
        return;
    }
    let scale = T::one() / T::from_usize(hw);
    for (y_img, x_img) in y.chunks_exact_mut(c).zip(x.chunks_exact(hw * c)) {
        for x_px in x_img.chunks_exact(c) {
            for (y, &x) in y_img.iter_mut().zip(x_px) {
                *y += x;
            }
        }
        y_img.iter_mut().for_each(|y| *y *= scale);
    }
}

/// `dx[img, ·, ch] = dy[img, ch] / hw`; overwritten.
///
/// # Shapes
/// - `dy`: `[n, c]`, `dx`: `[n, hw, c]`
pub fn global_avg_pool_backward<T: Real>(n: usize, hw: usize, c: usize, dy: &[T], dx: &mut [T]) {
    assert_eq!(
        dx.len(),
        n * hw * c,
        "global average pool input must be [n, h·w, c]"
    );
    assert_eq!(dy.len(), n * c, "global average pool output must be [n, c]");
    if c == 0 || hw == 0 {
        return;
    }
    let scale = T::one() / T::from_usize(hw);
    for (dy_img, dx_img) in dy.chunks_exact(c).zip(dx.chunks_exact_mut(hw * c)) {
        for dx_px in dx_img.chunks_exact_mut(c) {
            for (dx, &dy) in dx_px.iter_mut().zip(dy_img) {
                *dx = dy * scale;
            }
        }
    }
}

fn check_shapes(g: &Pool2dGeom, x_len: usize, y_len: usize) {
    assert_eq!(x_len, g.input_len(), "pool input must be [n, h, w, c]");
    assert_eq!(
        y_len,
        g.output_len(),
        "pool output must be [n, out_h, out_w, c]"
    );
}

/// Calls `f(p, img, rows, cols)` for every output pixel `p` (flat over `n, out_h, out_w`) of
/// image `img`, with the input rows and columns its window covers inside the input.
fn for_each_window(g: &Pool2dGeom, mut f: impl FnMut(usize, usize, Range<usize>, Range<usize>)) {
    for img in 0..g.n {
        for oh in 0..g.out_h {
            let (kh0, kh1, ih0) = window_taps(oh, g.stride_h, g.pad.top, g.h, g.k_h);
            for ow in 0..g.out_w {
                let (kw0, kw1, iw0) = window_taps(ow, g.stride_w, g.pad.left, g.w, g.k_w);
                let p = (img * g.out_h + oh) * g.out_w + ow;
                f(p, img, ih0..ih0 + (kh1 - kh0), iw0..iw0 + (kw1 - kw0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Rng, assert_grad, dot};
    use super::*;
    use crate::geom::Padding2d;

    fn geom(
        n: usize,
        hwc: (usize, usize, usize),
        k: (usize, usize),
        s: (usize, usize),
        pad: Padding2d,
    ) -> Pool2dGeom {
        Pool2dGeom::new(n, hwc, k, s, pad).expect("window fits")
    }

    fn max_pool(g: &Pool2dGeom, x: &[f64]) -> (Vec<f64>, Vec<u32>) {
        let mut y = vec![f64::NAN; g.output_len()];
        let mut arg = vec![7; g.output_len()];
        max_pool_forward(g, x, &mut y, Some(&mut arg));
        let mut y_alone = vec![f64::NAN; g.output_len()];
        max_pool_forward(g, x, &mut y_alone, None);
        assert_eq!(y, y_alone, "the argmax must not change the maximum");
        (y, arg)
    }

    #[test]
    fn max_pool_picks_each_window_maximum_and_its_index() {
        let g = geom(1, (4, 4, 1), (2, 2), (2, 2), Padding2d::default());
        #[rustfmt::skip]
        let x = [
            1.0, 5.0, 2.0, 0.0,
            3.0, 4.0, 8.0, 1.0,
            0.0, 0.0, 9.0, 6.0,
            7.0, 0.0, 6.0, 9.5,
        ];
        let (y, arg) = max_pool(&g, &x);
        assert_eq!(y, [5.0, 8.0, 7.0, 9.5]);
        assert_eq!(arg, [1, 6, 12, 15]);
    }

    #[test]
    fn max_pool_ties_go_to_the_first_in_row_major_order() {
        let g = geom(1, (2, 2, 2), (2, 2), (2, 2), Padding2d::default());
        // Channel 0: all equal. Channel 1: (0, 1) and (1, 0) tie above the rest.
        let x = [5.0, 0.0, 5.0, 3.0, 5.0, 3.0, 5.0, 1.0];
        let (y, arg) = max_pool(&g, &x);
        assert_eq!(y, [5.0, 3.0]);
        assert_eq!(arg, [0, 3]);
    }

    #[test]
    fn max_pool_padding_never_wins() {
        let pad = Padding2d::same(3, 3, 2, 2, 2, 2);
        let g = geom(1, (3, 3, 1), (2, 2), (2, 2), pad);
        let x: Vec<f64> = (1..=9).map(|v| -f64::from(v)).collect();
        let (y, arg) = max_pool(&g, &x);
        assert_eq!(y, [-1.0, -3.0, -7.0, -9.0]);
        assert_eq!(arg, [0, 2, 6, 8]);
    }

    #[test]
    fn max_pool_argmax_indexes_the_chunk_it_was_given() {
        let g = geom(2, (2, 2, 1), (2, 2), (2, 2), Padding2d::default());
        let x = [1.0, 2.0, 3.0, 4.0, 8.0, 7.0, 6.0, 5.0];
        let (_, arg) = max_pool(&g, &x);
        assert_eq!(arg, [3, 4]);
        let (_, arg) = max_pool(&g.with_batch(1), &x[4..]);
        assert_eq!(arg, [0]);
    }

    #[test]
    fn a_window_entirely_in_padding_outputs_zero_and_takes_no_gradient() {
        let pad = Padding2d {
            top: 0,
            bottom: 0,
            left: 2,
            right: 0,
        };
        let g = geom(1, (1, 1, 1), (1, 1), (1, 1), pad);
        let (y, arg) = max_pool(&g, &[-4.0]);
        assert_eq!(y, [0.0, 0.0, -4.0]);
        assert_eq!(arg, [u32::MAX, u32::MAX, 0]);
        let mut dx = [f64::NAN];
        max_pool_backward(&g, &arg, &[1.0, 2.0, 3.0], &mut dx);
        assert_eq!(dx, [3.0]);
        let mut y = [f64::NAN; 3];
        avg_pool_forward(&g, &[-4.0], &mut y);
        assert_eq!(y, [0.0, 0.0, -4.0]);
    }

    #[test]
    fn avg_pool_same_padding_excludes_padded_positions_from_the_count() {
        let pad = Padding2d::same(3, 3, 2, 2, 2, 2);
        let g = geom(1, (3, 3, 1), (2, 2), (2, 2), pad);
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        let mut y = vec![f64::NAN; 4];
        avg_pool_forward(&g, &x, &mut y);
        // (1+2+4+5)/4, (3+6)/2, (7+8)/2, 9/1
        assert_eq!(y, [3.0, 4.5, 7.5, 9.0]);
    }

    fn check_max_pool(g: Pool2dGeom, seed: u64) {
        let mut rng = Rng::new(seed);
        // Distinct values 0.01 apart: a 1e-6 step never changes a winner.
        let x = rng.distinct(g.input_len(), 0.01);
        let r = rng.vec(g.output_len(), -1.0, 1.0);
        let (_, arg) = max_pool(&g, &x);
        let mut dx = vec![f64::NAN; x.len()];
        max_pool_backward(&g, &arg, &r, &mut dx);
        assert_grad("max pool dx", &x, &dx, |x| dot(&r, &max_pool(&g, x).0));
    }

    fn check_avg_pool(g: Pool2dGeom, seed: u64) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(g.input_len(), -1.0, 1.0);
        let r = rng.vec(g.output_len(), -1.0, 1.0);
        let mut dx = vec![f64::NAN; x.len()];
        avg_pool_backward(&g, &r, &mut dx);
        assert_grad("avg pool dx", &x, &dx, |x| {
            let mut y = vec![f64::NAN; g.output_len()];
            avg_pool_forward(&g, x, &mut y);
            dot(&r, &y)
        });
    }

    #[test]
    fn max_pool_gradient_matches_finite_differences_with_overlapping_same_windows() {
        let pad = Padding2d::same(7, 6, 3, 3, 2, 2);
        check_max_pool(geom(3, (7, 6, 3), (3, 3), (2, 2), pad), 31);
    }

    #[test]
    fn max_pool_gradient_matches_finite_differences_on_odd_valid_input() {
        check_max_pool(geom(1, (5, 5, 5), (2, 2), (2, 2), Padding2d::default()), 32);
    }

    #[test]
    fn avg_pool_gradient_matches_finite_differences_with_same_padding() {
        let pad = Padding2d::same(5, 7, 3, 3, 1, 1);
        check_avg_pool(geom(3, (5, 7, 3), (3, 3), (1, 1), pad), 33);
        let pad = Padding2d::same(5, 7, 2, 2, 2, 2);
        check_avg_pool(geom(1, (5, 7, 5), (2, 2), (2, 2), pad), 34);
    }

    #[test]
    fn global_avg_pool_averages_each_channel_and_spreads_its_gradient() {
        let x = [1.0, 10.0, 3.0, 30.0, 5.0, 50.0, 0.0, 1.0];
        let mut y = [f64::NAN; 4];
        global_avg_pool_forward(2, 2, 2, &x, &mut y);
        assert_eq!(y, [2.0, 20.0, 2.5, 25.5]);

        let (n, hw, c) = (3, 5, 3);
        let mut rng = Rng::new(35);
        let x = rng.vec(n * hw * c, -1.0, 1.0);
        let r = rng.vec(n * c, -1.0, 1.0);
        let mut dx = vec![f64::NAN; x.len()];
        global_avg_pool_backward(n, hw, c, &r, &mut dx);
        assert_grad("dx", &x, &dx, |x| {
            let mut y = vec![f64::NAN; n * c];
            global_avg_pool_forward(n, hw, c, x, &mut y);
            dot(&r, &y)
        });
    }
}
