//! Activations, forward and backward, and the dead-unit counts the dashboard shows.
//!
//! Backward passes are computed from the activation's *output* `y` (never the pre-activation),
//! so a fused forward kernel need store only `y`. Softmax runs over the last axis (`cols`).

use super::{Real, dot};

/// An activation function, as Keras names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    Linear,
    ReLU,
    /// `min(max(x, 0), 6)` (MobileNet).
    ReLU6,
    Sigmoid,
    Tanh,
    /// Over the last axis.
    Softmax,
}

/// `y = act(x)`; `y` is overwritten. Softmax is the numerically stable form (the row maximum is
/// subtracted before exponentiating). NaN propagates through every activation.
///
/// # Shapes
/// - `x`, `y`: `[rows, cols]`; `cols` (the last axis) matters only to Softmax
pub fn activation_forward<T: Real>(act: Activation, cols: usize, x: &[T], y: &mut [T]) {
    assert_eq!(
        x.len(),
        y.len(),
        "activation: x and y must have the same length"
    );
    y.copy_from_slice(x);
    activation_in_place(act, cols, y);
}

/// `v = act(v)` in place: [`activation_forward`] without a second buffer, for an activation
/// applied to the output of the layer that just wrote `v`.
///
/// # Shapes
/// - `v`: `[rows, cols]`; `cols` (the last axis) matters only to Softmax
pub fn activation_in_place<T: Real>(act: Activation, cols: usize, v: &mut [T]) {
    let (zero, one, six) = (T::zero(), T::one(), T::from_f64(6.0));
    match act {
        Activation::Linear => {}
        Activation::ReLU => v
            .iter_mut()
            .for_each(|v| *v = if *v < zero { zero } else { *v }),
        Activation::ReLU6 => v.iter_mut().for_each(|v| {
            *v = if *v < zero {
                zero
            } else if *v > six {
                six
            } else {
                *v
            }
        }),
        Activation::Sigmoid => v.iter_mut().for_each(|v| *v = sigmoid(*v)),
        Activation::Tanh => v.iter_mut().for_each(|v| *v = v.tanh()),
        Activation::Softmax => {
            if v.is_empty() {
                return;
            }
            let whole_rows = cols > 0 && v.len().is_multiple_of(cols);
            assert!(whole_rows, "softmax: length must be a multiple of cols");
            for row in v.chunks_exact_mut(cols) {
                let max = row.iter().copied().fold(T::neg_infinity(), T::max);
                row.iter_mut().for_each(|v| *v = (*v - max).exp());
                let scale = one / super::sum(row);
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
    }
}

/// `dx`: the gradient with respect to the activation's input, from its output `y` and `dy`;
/// overwritten. ReLU passes where `y > 0`, ReLU6 where `0 < y < 6`; sigmoid `y(1 - y)`, tanh
/// `1 - y²`, softmax `y ⊙ (dy - Σ dy ⊙ y)` per row.
///
/// # Shapes
/// - `y`, `dy`, `dx`: `[rows, cols]`; `cols` matters only to Softmax
pub fn activation_backward<T: Real>(act: Activation, cols: usize, y: &[T], dy: &[T], dx: &mut [T]) {
    assert_eq!(
        y.len(),
        dx.len(),
        "activation: y and dx must have the same length"
    );
    assert_eq!(
        dy.len(),
        dx.len(),
        "activation: dy and dx must have the same length"
    );
    let (zero, one, six) = (T::zero(), T::one(), T::from_f64(6.0));
    let triples = dx.iter_mut().zip(y).zip(dy);
    match act {
        Activation::Linear => dx.copy_from_slice(dy),
        Activation::ReLU => {
            triples.for_each(|((dx, &y), &dy)| *dx = if y > zero { dy } else { zero })
        }
        Activation::ReLU6 => {
            triples.for_each(|((dx, &y), &dy)| *dx = if y > zero && y < six { dy } else { zero })
        }
        Activation::Sigmoid => triples.for_each(|((dx, &y), &dy)| *dx = dy * y * (one - y)),
        Activation::Tanh => triples.for_each(|((dx, &y), &dy)| *dx = dy * (one - y * y)),
        Activation::Softmax => {
            if y.is_empty() {
                return;
            }
            let whole_rows = cols > 0 && y.len().is_multiple_of(cols);
            assert!(whole_rows, "softmax: length must be a multiple of cols");
            let rows = y.chunks_exact(cols).zip(dy.chunks_exact(cols));
            for ((y_row, dy_row), dx_row) in rows.zip(dx.chunks_exact_mut(cols)) {
                let s = dot(dy_row, y_row);
                for ((dx, &y), &dy) in dx_row.iter_mut().zip(y_row).zip(dy_row) {
                    *dx = y * (dy - s);
                }
            }
        }
    }
}

/// The logistic function, without overflow for large `|x|`.
pub(crate) fn sigmoid<T: Real>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// The number of elements that are exactly zero (for ReLU outputs: the inactive units).
pub fn count_dead<T: Real>(y: &[T]) -> usize {
    y.iter().filter(|&&v| v == T::zero()).count()
}

/// `counts[ch]`: in how many rows channel `ch` is exactly zero; overwritten. A channel whose count
/// equals the number of rows (summed over a whole epoch) is a dead ReLU; `Σ counts / y.len()` is
/// the inactive fraction.
///
/// # Shapes
/// - `y`: `[rows, c]`, `counts`: `[c]`
pub fn count_dead_per_channel<T: Real>(c: usize, y: &[T], counts: &mut [usize]) {
    assert_eq!(counts.len(), c, "counts must be [c]");
    counts.fill(0);
    if c == 0 {
        return;
    }
    assert!(y.len().is_multiple_of(c), "y must be [rows, c]");
    for row in y.chunks_exact(c) {
        for (n, &v) in counts.iter_mut().zip(row) {
            *n += usize::from(v == T::zero());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Rng, assert_close, assert_grad, dot};
    use super::*;

    fn forward(act: Activation, cols: usize, x: &[f64]) -> Vec<f64> {
        let mut y = vec![f64::NAN; x.len()];
        activation_forward(act, cols, x, &mut y);
        y
    }

    #[test]
    fn forward_matches_hand_values() {
        let x = [-2.0, -0.5, 0.0, 0.5, 7.0];
        assert_eq!(forward(Activation::Linear, 5, &x), x);
        assert_eq!(forward(Activation::ReLU, 5, &x), [0.0, 0.0, 0.0, 0.5, 7.0]);
        assert_eq!(forward(Activation::ReLU6, 5, &x), [0.0, 0.0, 0.0, 0.5, 6.0]);
        let s = forward(Activation::Sigmoid, 5, &[0.0, 2.0, -2.0, -1000.0, 1000.0]);
        assert_close(
            "sigmoid",
            &s,
            &[
                0.5,
                0.880_797_077_977_882_3,
                0.119_202_922_022_117_57,
                0.0,
                1.0,
            ],
            1e-15,
            0.0,
        );
        let t = forward(Activation::Tanh, 5, &[0.0, 1.0, -1.0, 0.5, 20.0]);
        assert_close(
            "tanh",
            &t,
            &[
                0.0,
                0.761_594_155_955_764_9,
                -0.761_594_155_955_764_9,
                0.462_117_157_260_009_8,
                1.0,
            ],
            1e-15,
            0.0,
        );
    }

    #[test]
    fn softmax_normalises_each_row_stably() {
        let y = forward(
            Activation::Softmax,
            3,
            &[1.0, 2.0, 3.0, 1000.0, 1000.0, -1000.0],
        );
        // e^[1,2,3] / (e + e² + e³)
        let expect = [
            0.090_030_573_170_380_46,
            0.244_728_471_054_797_67,
            0.665_240_955_774_821_9,
            0.5,
            0.5,
            0.0,
        ];
        assert_close("softmax", &y, &expect, 1e-15, 1e-300);
    }

    #[test]
    fn in_place_equals_out_of_place() {
        let x = Rng::new(42).vec(24, -8.0, 8.0);
        for act in [
            Activation::Linear,
            Activation::ReLU,
            Activation::ReLU6,
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Softmax,
        ] {
            let mut v = x.clone();
            activation_in_place(act, 6, &mut v);
            assert_eq!(v, forward(act, 6, &x), "{act:?}");
        }
    }

    #[test]
    fn nan_propagates_through_relu() {
        assert!(forward(Activation::ReLU, 1, &[f64::NAN])[0].is_nan());
    }

    fn check(act: Activation, cols: usize, x: Vec<f64>, seed: u64) {
        let r = Rng::new(seed).vec(x.len(), -1.0, 1.0);
        let y = forward(act, cols, &x);
        let mut dx = vec![f64::NAN; x.len()];
        activation_backward(act, cols, &y, &r, &mut dx);
        assert_grad(&format!("{act:?}"), &x, &dx, |x| {
            dot(&r, &forward(act, cols, x))
        });
    }

    #[test]
    fn every_backward_matches_finite_differences_away_from_kinks() {
        let mut rng = Rng::new(41);
        check(Activation::Linear, 7, rng.vec(21, -3.0, 3.0), 1);
        check(Activation::ReLU, 7, rng.away_from_zero(21, 0.1), 2);
        let relu6_x = (0..30)
            .map(|i| {
                let v = rng.uniform(0.1, 1.9);
                [-v, 3.0 * v, 6.0 + v][i % 3]
            })
            .collect();
        check(Activation::ReLU6, 7, relu6_x, 3);
        check(Activation::Sigmoid, 7, rng.vec(21, -6.0, 6.0), 4);
        check(Activation::Tanh, 7, rng.vec(21, -3.0, 3.0), 5);
        check(Activation::Softmax, 7, rng.vec(21, -3.0, 3.0), 6);
        check(Activation::Softmax, 1, rng.vec(3, -3.0, 3.0), 7);
    }

    #[test]
    fn dead_units_are_counted_overall_and_per_channel() {
        let y = [0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 3.0, 4.0];
        assert_eq!(count_dead(&y), 5);
        let mut counts = [9; 3];
        count_dead_per_channel(3, &y, &mut counts);
        assert_eq!(counts, [3, 0, 2]);
    }
}
