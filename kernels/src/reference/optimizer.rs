//! Optimizer steps with Keras 3's update formulas exactly (`keras/src/optimizers/{sgd,rmsprop,
//! adam}.py`), in place over one parameter slice `w`, its gradient `g` and its state slots.
//!
//! Learning-rate schedules, weight decay and gradient clipping are the runtime's: it passes the
//! step's learning rate and an already-processed gradient.

use super::Real;

/// SGD. With a `velocity` slot (Keras creates one when `momentum != 0`):
/// `v = momentum·v - lr·g`, then `w += v`, or with `nesterov` `w += momentum·v - lr·g`.
/// Without: `w -= lr·g`.
///
/// # Shapes
/// - `w`, `g`, `velocity`: the same length
pub fn sgd_step<T: Real>(
    w: &mut [T],
    g: &[T],
    velocity: Option<&mut [T]>,
    lr: T,
    momentum: T,
    nesterov: bool,
) {
    assert_eq!(g.len(), w.len(), "sgd: gradient must match the parameter");
    match velocity {
        None => w.iter_mut().zip(g).for_each(|(w, &g)| *w -= lr * g),
        Some(v) => {
            assert_eq!(v.len(), w.len(), "sgd: velocity must match the parameter");
            for ((w, &g), v) in w.iter_mut().zip(g).zip(v) {
                *v = momentum * *v - lr * g;
                *w += if nesterov { momentum * *v - lr * g } else { *v };
            }
        }
    }
}

/// RMSprop (not centred): `v = rho·v + (1 - rho)·g²`, `inc = lr·g / √(v + eps)`; with a
/// `momentum_buf` slot (Keras creates one when `momentum > 0`) `buf = momentum·buf + inc`,
/// `w -= buf`, else `w -= inc`. Keras defaults: `rho = 0.9`, `eps = 1e-7`.
///
/// # Shapes
/// - `w`, `g`, `velocity`, `momentum_buf`: the same length
#[allow(clippy::too_many_arguments)]
pub fn rmsprop_step<T: Real>(
    w: &mut [T],
    g: &[T],
    velocity: &mut [T],
    momentum_buf: Option<&mut [T]>,
    lr: T,
    rho: T,
    momentum: T,
    eps: T,
) {
    assert_eq!(
        g.len(),
        w.len(),
        "rmsprop: gradient must match the parameter"
    );
    assert_eq!(
        velocity.len(),
        w.len(),
        "rmsprop: velocity must match the parameter"
    );
    let one = T::one();
    let params = w.iter_mut().zip(g).zip(velocity.iter_mut());
    match momentum_buf {
        None => {
            for ((w, &g), v) in params {
                *v = rho * *v + (one - rho) * g * g;
                *w -= lr * g / (*v + eps).sqrt();
            }
        }
        Some(buf) => {
            assert_eq!(
                buf.len(),
                g.len(),
                "rmsprop: momentum must match the parameter"
            );
            for (((w, &g), v), m) in params.zip(buf) {
                *v = rho * *v + (one - rho) * g * g;
                *m = momentum * *m + lr * g / (*v + eps).sqrt();
                *w -= *m;
            }
        }
    }
}

/// Adam (no AMSGrad) at 1-based step `t`: `alpha = lr·√(1 - β₂ᵗ) / (1 - β₁ᵗ)`,
/// `m += (g - m)(1 - β₁)`, `v += (g² - v)(1 - β₂)`, `w -= alpha·m / (√v + eps)`.
/// Keras defaults: `β₁ = 0.9`, `β₂ = 0.999`, `eps = 1e-7`.
///
/// # Shapes
/// - `w`, `g`, `m`, `v`: the same length
#[allow(clippy::too_many_arguments)]
pub fn adam_step<T: Real>(
    w: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    lr: T,
    beta_1: T,
    beta_2: T,
    eps: T,
    t: u64,
) {
    assert_eq!(g.len(), w.len(), "adam: gradient must match the parameter");
    assert_eq!(
        m.len(),
        w.len(),
        "adam: first moment must match the parameter"
    );
    assert_eq!(
        v.len(),
        w.len(),
        "adam: second moment must match the parameter"
    );
    let one = T::one();
    // Keras computes the powers in the variable's dtype, from a float step count.
    let step = T::from_f64(t as f64);
    let alpha = lr * (one - beta_2.powf(step)).sqrt() / (one - beta_1.powf(step));
    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m += (g - *m) * (one - beta_1);
        *v += (g * g - *v) * (one - beta_2);
        *w -= alpha * *m / (v.sqrt() + eps);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::assert_close;
    use super::*;

    /// Gradients of the three steps: `[g, 2g]` for `g` in 0.5, -0.25, 0.125.
    const GRADS: [[f64; 2]; 3] = [[0.5, 1.0], [-0.25, -0.5], [0.125, 0.25]];

    fn run(mut step: impl FnMut(&mut [f64], &[f64], u64)) -> Vec<[f64; 2]> {
        let mut w = [1.0, -2.0];
        (1..=3)
            .map(|t| {
                step(&mut w, &GRADS[t as usize - 1], t);
                w
            })
            .collect()
    }

    fn assert_steps(what: &str, got: &[[f64; 2]], expect: [[f64; 2]; 3]) {
        assert_close(
            what,
            got.as_flattened(),
            expect.as_flattened(),
            1e-15,
            1e-16,
        );
    }

    #[test]
    fn plain_sgd_subtracts_the_scaled_gradient() {
        let got = run(|w, g, _| sgd_step(w, g, None, 0.1, 0.0, false));
        assert_steps(
            "sgd",
            &got,
            [[0.95, -2.1], [0.975, -2.05], [0.9625, -2.075]],
        );
    }

    #[test]
    fn sgd_momentum_follows_keras_for_three_steps() {
        // lr 0.1, momentum 0.9, first parameter:
        // v = -0.05, w = 0.95; v = -0.045 + 0.025 = -0.02, w = 0.93;
        // v = -0.018 - 0.0125 = -0.0305, w = 0.8995.
        let mut v = [0.0; 2];
        let got = run(|w, g, _| sgd_step(w, g, Some(&mut v), 0.1, 0.9, false));
        assert_steps(
            "momentum",
            &got,
            [[0.95, -2.1], [0.93, -2.14], [0.8995, -2.201]],
        );
        // Nesterov adds momentum·v - lr·g instead of v:
        // w = 1 - 0.045 - 0.05 = 0.905; w += -0.018 + 0.025 → 0.912;
        // w += -0.02745 - 0.0125 → 0.87205.
        let mut v = [0.0; 2];
        let got = run(|w, g, _| sgd_step(w, g, Some(&mut v), 0.1, 0.9, true));
        assert_steps(
            "nesterov",
            &got,
            [[0.905, -2.19], [0.912, -2.176], [0.87205, -2.2559]],
        );
    }

    // The expected values of the RMSprop and Adam tests come from the Keras 3 formulas in plain
    // Python (no framework), w = [1.0, -2.0], gradients [g, 2g] for g in (0.5, -0.25, 0.125):
    //
    //   # RMSprop: lr 0.01, rho 0.9, eps 1e-7, momentum mom (0: no momentum slot)
    //   v = rho * v + (1 - rho) * g**2; inc = lr * g / math.sqrt(v + eps)
    //   if mom > 0: m = mom * m + inc; w -= m
    //   else: w -= inc
    //
    //   # Adam: lr 0.001, b1 0.9, b2 0.999, eps 1e-7, t = 1, 2, 3
    //   alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
    //   m += (g - m) * (1 - b1); v += (g**2 - v) * (1 - b2)
    //   w -= alpha * m / (math.sqrt(v) + eps)

    #[test]
    fn rmsprop_follows_keras_for_three_steps() {
        let mut v = [0.0; 2];
        let got = run(|w, g, _| rmsprop_step(w, g, &mut v, None, 0.01, 0.9, 0.0, 1e-7));
        let expect = [
            [0.968_377_286_643_679_7, -2.031_622_760_790_307_2],
            [0.983_121_456_617_157, -2.016_878_571_585_333],
            [0.975_575_106_463_123_2, -2.024_424_932_053_268_6],
        ];
        assert_steps("rmsprop", &got, expect);
    }

    #[test]
    fn rmsprop_with_momentum_follows_keras_for_three_steps() {
        let (mut v, mut m) = ([0.0; 2], [0.0; 2]);
        let got = run(|w, g, _| rmsprop_step(w, g, &mut v, Some(&mut m), 0.01, 0.9, 0.5, 1e-7));
        let expect = [
            [0.968_377_286_643_679_7, -2.031_622_760_790_307_2],
            [0.967_310_099_938_996_9, -2.032_689_951_980_487],
            [0.959_230_156_432_621_6, -2.040_769_908_043_512_4],
        ];
        assert_steps("rmsprop momentum", &got, expect);
    }

    #[test]
    fn adam_follows_keras_for_three_steps() {
        let (mut m, mut v) = ([0.0; 2], [0.0; 2]);
        let got = run(|w, g, t| adam_step(w, g, &mut m, &mut v, 0.001, 0.9, 0.999, 1e-7, t));
        let expect = [
            [0.999_000_006_324_515_4, -2.000_999_996_837_732_6],
            [0.998_733_670_792_079_2, -2.001_266_333_123_778_6],
            [0.998_393_243_524_819_3, -2.001_606_761_331_510_5],
        ];
        assert_steps("adam", &got, expect);
    }

    #[test]
    fn adam_in_f32_tracks_f64() {
        let (mut w, mut m, mut v) = ([1.0f32, -2.0], [0.0f32; 2], [0.0f32; 2]);
        for (t, g) in (1..).zip(GRADS) {
            adam_step(
                &mut w,
                &[g[0] as f32, g[1] as f32],
                &mut m,
                &mut v,
                0.001,
                0.9,
                0.999,
                1e-7,
                t,
            );
        }
        let expect = [0.998_393_243_524_819_3, -2.001_606_761_331_510_5];
        assert!(
            w.iter()
                .zip(expect)
                .all(|(&a, e)| (f64::from(a) - e).abs() < 1e-6)
        );
    }
}
