//! Optimizer updates as JIT kernels, with Keras 3's formulas in the reference's operation
//! order ([`crate::reference::sgd_step`], [`rmsprop_step`](crate::reference::rmsprop_step),
//! [`adam_step`](crate::reference::adam_step)): SGD (momentum, Nesterov), RMSprop (with and
//! without momentum), Adam.
//!
//! Hyper-parameters that a run does not change (momentum, rho, betas, epsilon) are compiled
//! in; the learning rate — and Adam's step-dependent `alpha` — is read at every call from a
//! small scalar buffer, so changing the learning rate or advancing the step never recompiles.
//!
//! Every kernel updates one parameter tensor of `len` elements in place. A work item is a
//! block of 4 elements; the last item handles a tail of 1–3 elements, so no padding is needed.
//!
//! Must not depend on anything of the `cnntui` crate.

use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::Value;

use super::backward::for_vector_items;
use super::{Emit, Jit, JitError};

fn check(len: usize) -> Result<(), JitError> {
    if len == 0 {
        return Err(JitError::Unsupported(
            "optimizer over an empty tensor".into(),
        ));
    }
    Ok(())
}

/// The scalar at `scalars[i]` in every lane.
fn scalar(e: &mut Emit<'_, '_>, scalars: Value, i: usize) -> Value {
    e.load_splat(scalars, (4 * i) as i32)
}

/// Emits an SGD step. Without momentum (`momentum == 0`, Keras creates no velocity slot):
/// `w -= lr·g`. With it: `v = momentum·v - lr·g`, then `w += v`, or with `nesterov`
/// `w += momentum·v - lr·g`. Returns the number of work items, `ceil(len / 4)`.
///
/// # Buffers
/// `w` (updated), `g`, then `velocity` (updated; only when `momentum != 0`), then `scalars`
/// = `[lr]` f32.
///
/// # Errors
/// [`JitError::Unsupported`] when `len == 0`; [`JitError::Codegen`].
pub fn emit_sgd(
    jit: &mut Jit,
    name: &str,
    len: usize,
    momentum: f32,
    nesterov: bool,
) -> Result<usize, JitError> {
    check(len)?;
    let with_v = momentum != 0.0;
    let mut items = 0;
    jit.define(name, |e| {
        let n_bufs = if with_v { 3 } else { 2 };
        let bufs: Vec<Value> = (0..n_bufs).map(|i| e.buffer(i)).collect();
        let scalars = e.buffer(n_bufs);
        let lr = scalar(e, scalars, 0);
        let mom = e.splat(momentum);
        items = for_vector_items(e, len, &bufs, |e, p, lanes| {
            let w = e.load_partial(p[0], 0, lanes);
            let g = e.load_partial(p[1], 0, lanes);
            let lr_g = e.b.ins().fmul(lr, g);
            let w = if with_v {
                let v = e.load_partial(p[2], 0, lanes);
                let v = e.b.ins().fmul(mom, v);
                let v = e.b.ins().fsub(v, lr_g);
                e.store_partial(v, p[2], 0, lanes);
                let step = if nesterov {
                    let t = e.b.ins().fmul(mom, v);
                    e.b.ins().fsub(t, lr_g)
                } else {
                    v
                };
                e.b.ins().fadd(w, step)
            } else {
                e.b.ins().fsub(w, lr_g)
            };
            e.store_partial(w, p[0], 0, lanes);
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(items)
}

/// Emits an RMSprop step (not centred): `v = rho·v + (1 - rho)·g²`,
/// `inc = lr·g / √(v + eps)`; with momentum (`momentum > 0`) `m = momentum·m + inc`,
/// `w -= m`, else `w -= inc`. Returns the number of work items, `ceil(len / 4)`.
///
/// # Buffers
/// `w` (updated), `g`, `velocity` (updated), then `momentum` (updated; only when
/// `momentum > 0`), then `scalars` = `[lr]` f32.
///
/// # Errors
/// [`JitError::Unsupported`] when `len == 0`; [`JitError::Codegen`].
pub fn emit_rmsprop(
    jit: &mut Jit,
    name: &str,
    len: usize,
    rho: f32,
    momentum: f32,
    eps: f32,
) -> Result<usize, JitError> {
    check(len)?;
    let with_m = momentum > 0.0;
    let mut items = 0;
    jit.define(name, |e| {
        let n_bufs = if with_m { 4 } else { 3 };
        let bufs: Vec<Value> = (0..n_bufs).map(|i| e.buffer(i)).collect();
        let scalars = e.buffer(n_bufs);
        let lr = scalar(e, scalars, 0);
        let (rho_v, keep) = (e.splat(rho), e.splat(1.0 - rho));
        let (mom, eps_v) = (e.splat(momentum), e.splat(eps));
        items = for_vector_items(e, len, &bufs, |e, p, lanes| {
            let w = e.load_partial(p[0], 0, lanes);
            let g = e.load_partial(p[1], 0, lanes);
            let v = e.load_partial(p[2], 0, lanes);
            let v = e.b.ins().fmul(rho_v, v);
            let kg = e.b.ins().fmul(keep, g);
            let kgg = e.b.ins().fmul(kg, g);
            let v = e.b.ins().fadd(v, kgg);
            e.store_partial(v, p[2], 0, lanes);
            let lr_g = e.b.ins().fmul(lr, g);
            let s = e.b.ins().fadd(v, eps_v);
            let s = e.b.ins().sqrt(s);
            let inc = e.b.ins().fdiv(lr_g, s);
            let step = if with_m {
                let m = e.load_partial(p[3], 0, lanes);
                let m = e.b.ins().fmul(mom, m);
                let m = e.b.ins().fadd(m, inc);
                e.store_partial(m, p[3], 0, lanes);
                m
            } else {
                inc
            };
            let w = e.b.ins().fsub(w, step);
            e.store_partial(w, p[0], 0, lanes);
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(items)
}

/// Adam's step size at 1-based step `t`, `lr·√(1 - β₂ᵗ) / (1 - β₁ᵗ)`, computed in f32 exactly
/// as [`crate::reference::adam_step`] does: the value [`emit_adam`]'s kernel reads.
pub fn adam_alpha(lr: f32, beta_1: f32, beta_2: f32, t: u64) -> f32 {
    let step = t as f64 as f32;
    lr * (1.0 - beta_2.powf(step)).sqrt() / (1.0 - beta_1.powf(step))
}

/// Emits an Adam step (no AMSGrad): `m += (g - m)(1 - β₁)`, `v += (g² - v)(1 - β₂)`,
/// `w -= alpha·m / (√v + eps)` with `alpha` from [`adam_alpha`]. Returns the number of work
/// items, `ceil(len / 4)`.
///
/// # Buffers
/// `w` (updated), `g`, `m` (updated), `v` (updated), `scalars` = `[alpha]` f32.
///
/// # Errors
/// [`JitError::Unsupported`] when `len == 0`; [`JitError::Codegen`].
pub fn emit_adam(
    jit: &mut Jit,
    name: &str,
    len: usize,
    beta_1: f32,
    beta_2: f32,
    eps: f32,
) -> Result<usize, JitError> {
    check(len)?;
    let mut items = 0;
    jit.define(name, |e| {
        let bufs: Vec<Value> = (0..4).map(|i| e.buffer(i)).collect();
        let scalars = e.buffer(4);
        let alpha = scalar(e, scalars, 0);
        let (k1, k2, eps_v) = (e.splat(1.0 - beta_1), e.splat(1.0 - beta_2), e.splat(eps));
        items = for_vector_items(e, len, &bufs, |e, p, lanes| {
            let w = e.load_partial(p[0], 0, lanes);
            let g = e.load_partial(p[1], 0, lanes);
            let m = e.load_partial(p[2], 0, lanes);
            let v = e.load_partial(p[3], 0, lanes);
            let t = e.b.ins().fsub(g, m);
            let t = e.b.ins().fmul(t, k1);
            let m = e.b.ins().fadd(m, t);
            e.store_partial(m, p[2], 0, lanes);
            let gg = e.b.ins().fmul(g, g);
            let t = e.b.ins().fsub(gg, v);
            let t = e.b.ins().fmul(t, k2);
            let v = e.b.ins().fadd(v, t);
            e.store_partial(v, p[3], 0, lanes);
            let am = e.b.ins().fmul(alpha, m);
            let s = e.b.ins().sqrt(v);
            let s = e.b.ins().fadd(s, eps_v);
            let step = e.b.ins().fdiv(am, s);
            let w = e.b.ins().fsub(w, step);
            e.store_partial(w, p[0], 0, lanes);
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::super::backward::testing::{Guarded, Rng, assert_close, compile, run};
    use super::*;
    use crate::reference;
    use proptest::prelude::*;

    /// Runs `steps` updates of a compiled kernel and of the reference side by side, with a new
    /// gradient and learning rate each step (no recompilation), and compares every state.
    fn check(
        len: usize,
        seed: u64,
        emit: impl FnOnce(&mut Jit) -> Result<usize, JitError>,
        slots: usize,
        mut reference_step: impl FnMut(&mut [f32], &[f32], &mut [Vec<f32>], f32, u64),
        scalar_of: impl Fn(f32, u64) -> f32,
    ) {
        let mut rng = Rng::new(seed);
        let (k, items) = compile(emit);
        let w0 = rng.vec(len, -1.0, 1.0);
        let mut want_w = w0.clone();
        let mut want_s: Vec<Vec<f32>> = vec![vec![0.0; len]; slots];
        let mut w = Guarded::new(&w0);
        let mut state: Vec<Guarded> = (0..slots).map(|_| Guarded::new(&vec![0.0; len])).collect();
        for t in 1..=5u64 {
            let g = rng.vec(len, -1.0, 1.0);
            let lr = 0.01 * t as f32;
            reference_step(&mut want_w, &g, &mut want_s, lr, t);
            let mut gb = Guarded::new(&g);
            let mut sc = Guarded::new(&[scalar_of(lr, t)]);
            let mut bufs: Vec<&mut Guarded> = vec![&mut w, &mut gb];
            bufs.extend(state.iter_mut());
            bufs.push(&mut sc);
            run(&k, &mut bufs, items);
            assert_close("w", w.get(), &want_w, 1e-5, 1e-6);
            for (s, want) in state.iter().zip(&want_s) {
                assert_close("state", s.get(), want, 1e-5, 1e-6);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn sgd_follows_the_reference(
            len in 1usize..40,
            momentum in prop::sample::select(vec![0.0f32, 0.9]),
            nesterov in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let slots = usize::from(momentum != 0.0);
            check(len, seed, |j| emit_sgd(j, "sgd", len, momentum, nesterov), slots,
                |w, g, s, lr, _| {
                    let v = s.first_mut().map(|v| v.as_mut_slice());
                    reference::sgd_step(w, g, v, lr, momentum, nesterov);
                },
                |lr, _| lr);
        }

        #[test]
        fn rmsprop_follows_the_reference(
            len in 1usize..40,
            momentum in prop::sample::select(vec![0.0f32, 0.5]),
            seed in any::<u64>(),
        ) {
            let slots = 1 + usize::from(momentum > 0.0);
            check(len, seed, |j| emit_rmsprop(j, "rms", len, 0.9, momentum, 1e-7), slots,
                |w, g, s, lr, _| {
                    let (v, rest) = s.split_at_mut(1);
                    let m = rest.first_mut().map(|m| m.as_mut_slice());
                    reference::rmsprop_step(w, g, &mut v[0], m, lr, 0.9, momentum, 1e-7);
                },
                |lr, _| lr);
        }

        #[test]
        fn adam_follows_the_reference(len in 1usize..40, seed in any::<u64>()) {
            check(len, seed, |j| emit_adam(j, "adam", len, 0.9, 0.999, 1e-7), 2,
                |w, g, s, lr, t| {
                    let (m, v) = s.split_at_mut(1);
                    reference::adam_step(w, g, &mut m[0], &mut v[0], lr, 0.9, 0.999, 1e-7, t);
                },
                |lr, t| adam_alpha(lr, 0.9, 0.999, t));
        }
    }
}
