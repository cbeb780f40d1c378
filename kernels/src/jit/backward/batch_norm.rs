//! `BatchNormalization` backward: training (through the batch statistics) and inference
//! (statistics held constant), in the reference's operation order.
//!
//! Must not depend on anything of the `cnntui` crate.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::{c64, for_strided, for_vectors};
use crate::jit::{Emit, Jit, JitError};

/// Emits the training-mode backward: `dbeta = Σ dy`, `dgamma = Σ dy·x̂` and
/// `dx = γ/σ · (dy - dbeta/rows - x̂·dgamma/rows)` with `σ = √(var + eps)` and the batch
/// statistics `mean`, `var` of the forward pass; all three overwritten. Returns the number of
/// work items, `ceil(c / 4)`.
///
/// # Buffers
/// `x`, `dy`: `[rows, c]`; `gamma`, `mean`, `var`: `[c]`; `dx`: `[rows, c]`; `dgamma`,
/// `dbeta`: `[c]`.
///
/// # Work items
/// Item `i` owns channels `4i .. min(4i + 4, c)`: it reduces them over every row, then writes
/// their `dx` column. The whole batch is one call's input (statistics are per batch).
///
/// # Errors
/// [`JitError::Unsupported`] when `rows` or `c` is zero; [`JitError::Codegen`].
pub fn emit_batch_norm_backward(
    jit: &mut Jit,
    name: &str,
    rows: usize,
    c: usize,
    eps: f32,
) -> Result<usize, JitError> {
    if rows == 0 || c == 0 {
        return Err(JitError::Unsupported(format!(
            "batch norm backward {rows}×{c}"
        )));
    }
    let items = c.div_ceil(4);
    jit.define(name, |e| {
        let b: Vec<Value> = (0..8).map(|i| e.buffer(i)).collect();
        e.for_items(|e, item| {
            let tail = c % 4;
            if tail == 0 {
                return bn_block(e, &b, item, rows, c, eps, 4);
            }
            let last = e.b.ins().icmp_imm_s(IntCC::Equal, item, items as i64 - 1);
            let not_last = e.b.ins().icmp_imm_s(IntCC::Equal, last, 0);
            e.if_then(last, |e| bn_block(e, &b, item, rows, c, eps, tail))?;
            e.if_then(not_last, |e| bn_block(e, &b, item, rows, c, eps, 4))
        })
    })?;
    Ok(items)
}

/// One block of `lanes` channels of the training backward.
fn bn_block(
    e: &mut Emit<'_, '_>,
    b: &[Value],
    item: Value,
    rows: usize,
    c: usize,
    eps: f32,
    lanes: usize,
) -> Result<(), JitError> {
    let [x, dy, gamma, mean, var, dx, dgamma, dbeta] = b else {
        return Err(JitError::Unsupported("batch norm buffers".into()));
    };
    let ch = |e: &mut Emit<'_, '_>, p: Value| e.addr(p, item, 16);
    let (gp, mp, vp) = (ch(e, *gamma), ch(e, *mean), ch(e, *var));
    let g = e.load_partial(gp, 0, lanes);
    let m = e.load_partial(mp, 0, lanes);
    let v = e.load_partial(vp, 0, lanes);
    let (eps_v, one) = (e.splat(eps), e.splat(1.0));
    let s = e.b.ins().fadd(v, eps_v);
    let s = e.b.ins().sqrt(s);
    let inv_std = e.b.ins().fdiv(one, s);
    let zero = e.splat(0.0);
    let db = e.var(crate::jit::builder::F32X4, zero);
    let dg = e.var(crate::jit::builder::F32X4, zero);
    let (xc, dyc) = (ch(e, *x), ch(e, *dy));
    let (z, n) = (c64(e, 0), c64(e, rows));
    let row = (c * 4) as i64;
    for_strided(e, z, n, &[(xc, row), (dyc, row)], |e, p| {
        let xv = e.load_partial(p[0], 0, lanes);
        let d = e.load_partial(p[1], 0, lanes);
        let a = e.b.use_var(db);
        let a = e.b.ins().fadd(a, d);
        e.b.def_var(db, a);
        let t = e.b.ins().fsub(xv, m);
        let t = e.b.ins().fmul(d, t);
        let a = e.b.use_var(dg);
        let a = e.b.ins().fadd(a, t);
        e.b.def_var(dg, a);
        Ok(())
    })?;
    let db = e.b.use_var(db);
    let dg = e.b.use_var(dg);
    let dg = e.b.ins().fmul(dg, inv_std);
    let (dbp, dgp) = (ch(e, *dbeta), ch(e, *dgamma));
    e.store_partial(db, dbp, 0, lanes);
    e.store_partial(dg, dgp, 0, lanes);
    let per_row = e.splat(1.0 / rows as f32);
    let k = e.b.ins().fmul(g, inv_std);
    let mean_dy = e.b.ins().fmul(db, per_row);
    let coef = e.b.ins().fmul(dg, per_row);
    let coef = e.b.ins().fmul(coef, inv_std);
    let dxc = ch(e, *dx);
    for_strided(e, z, n, &[(xc, row), (dyc, row), (dxc, row)], |e, p| {
        let xv = e.load_partial(p[0], 0, lanes);
        let d = e.load_partial(p[1], 0, lanes);
        let t = e.b.ins().fsub(d, mean_dy);
        let xm = e.b.ins().fsub(xv, m);
        let xm = e.b.ins().fmul(xm, coef);
        let t = e.b.ins().fsub(t, xm);
        let out = e.b.ins().fmul(k, t);
        e.store_partial(out, p[2], 0, lanes);
        Ok(())
    })
}

/// Emits the inference-mode backward `dx = dy·γ/√(var + eps)` (overwritten). Returns the
/// number of work items, `rows`.
///
/// # Buffers
/// `dy`: `[rows, c]`; `gamma`, `var`: `[c]`; `dx`: `[rows, c]` (may alias `dy`).
///
/// # Work items
/// One row per item.
///
/// # Errors
/// [`JitError::Unsupported`] when `rows` or `c` is zero; [`JitError::Codegen`].
pub fn emit_batch_norm_backward_infer(
    jit: &mut Jit,
    name: &str,
    rows: usize,
    c: usize,
    eps: f32,
) -> Result<usize, JitError> {
    if rows == 0 || c == 0 {
        return Err(JitError::Unsupported(format!(
            "batch norm backward {rows}×{c}"
        )));
    }
    jit.define(name, |e| {
        let (dy, gamma, var, dx) = (e.buffer(0), e.buffer(1), e.buffer(2), e.buffer(3));
        let eps_v = e.splat(eps);
        e.for_items(|e, r| {
            let dy_r = e.addr(dy, r, (c * 4) as i64);
            let dx_r = e.addr(dx, r, (c * 4) as i64);
            for_vectors(e, c, &[dy_r, gamma, var, dx_r], |e, p, lanes| {
                let g = e.load_partial(p[1], 0, lanes);
                let v = e.load_partial(p[2], 0, lanes);
                let s = e.b.ins().fadd(v, eps_v);
                let s = e.b.ins().sqrt(s);
                let scale = e.b.ins().fdiv(g, s);
                let d = e.load_partial(p[0], 0, lanes);
                let out = e.b.ins().fmul(d, scale);
                e.store_partial(out, p[3], 0, lanes);
                Ok(())
            })
        })
    })?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Guarded, Rng, assert_close, compile, run};
    use super::*;
    use crate::reference;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn training_backward_matches_the_reference(
            rows in 1usize..60,
            c in 1usize..20,
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let x = rng.vec(rows * c, -2.0, 2.0);
            let dy = rng.vec(rows * c, -1.0, 1.0);
            let gamma = rng.vec(c, 0.5, 1.5);
            let beta = rng.vec(c, -1.0, 1.0);
            let eps = 1e-3;
            let (mut y, mut mean, mut var) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
            reference::batch_norm_forward_train(
                rows, c, &x, &gamma, &beta, eps, &mut y, &mut mean, &mut var,
            );
            let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
            reference::batch_norm_backward(
                rows, c, &x, &dy, &gamma, &mean, &var, eps, &mut dx, &mut dg, &mut db,
            );
            let (k, items) = compile(|j| emit_batch_norm_backward(j, "bn", rows, c, eps));
            let mut bufs = [
                Guarded::new(&x),
                Guarded::new(&dy),
                Guarded::new(&gamma),
                Guarded::new(&mean),
                Guarded::new(&var),
                Guarded::output(x.len()),
                Guarded::output(c),
                Guarded::output(c),
            ];
            let mut refs: Vec<&mut Guarded> = bufs.iter_mut().collect();
            run(&k, &mut refs, items);
            let tol = 2e-6 * rows as f32;
            assert_close("dbeta", bufs[7].get(), &db, 1e-5, tol);
            assert_close("dgamma", bufs[6].get(), &dg, 1e-5, tol);
            assert_close("dx", bufs[5].get(), &dx, 1e-4, tol);
        }

        #[test]
        fn inference_backward_matches_the_reference(
            rows in 1usize..20,
            c in 1usize..20,
            seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let dy = rng.vec(rows * c, -1.0, 1.0);
            let gamma = rng.vec(c, 0.5, 1.5);
            let var = rng.vec(c, 0.1, 2.0);
            let mut want = vec![0.0; dy.len()];
            reference::batch_norm_backward_infer(rows, c, &dy, &gamma, &var, 1e-5, &mut want);
            let (k, items) = compile(|j| emit_batch_norm_backward_infer(j, "bn", rows, c, 1e-5));
            let (mut d, mut g, mut v, mut dx) = (
                Guarded::new(&dy),
                Guarded::new(&gamma),
                Guarded::new(&var),
                Guarded::output(dy.len()),
            );
            run(&k, &mut [&mut d, &mut g, &mut v, &mut dx], items);
            assert_close("dx", dx.get(), &want, 1e-6, 0.0);
        }
    }
}
