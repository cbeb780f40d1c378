//! Backward kernels: the gradients of every layer the forward emitters compile, as JIT kernels
//! checked against [`crate::reference`].
//!
//! One file per family: [`conv`] (`Conv2D` input, kernel and bias gradients), [`depthwise`]
//! (`DepthwiseConv2D`, multiplier 1), [`dense`], [`pool`] (max through the recorded argmax,
//! average, global average, and the fused ReLU + max-pool backward of the fused forward kernel),
//! [`activation`] and [`batch_norm`]. The optimizer updates live in [`super::optimizer`].
//!
//! Conventions shared by every emitter here:
//! - Buffers are f32 (argmax u32), NHWC, HWIO conv kernels, `[d_in, d_out]` dense kernels.
//! - Every emitter documents its buffer order and its work item, and returns the number of
//!   work items of the whole buffers; the runtime splits `[0, items)` into disjoint ranges
//!   across threads. Items always write disjoint outputs, so there are no races and the result
//!   never depends on the split (a reduction's summation order is fixed by the kernel, not by
//!   the range).
//! - Every output is **overwritten**, weight gradients included (a kernel-gradient item
//!   reduces over the whole batch; the caller does not sum chunks).
//! - Channel counts need not be multiples of 4: tails are loaded and stored lane by lane, so
//!   no kernel reads or writes outside its buffers.
//!
//!
//! A training step through a fused `Conv2D → bias → ReLU → MaxPooling2D` layer, given `dy`
//! (the gradient of the pooled output), its pooled output `y` and the forward's argmax:
//! 1. [`pool::emit_pool_relu_backward`] → `dz`, the gradient of the pre-activation;
//! 2. [`conv::emit_bias_backward`] over `dz` → `db`;
//! 3. [`conv::emit_conv2d_backward_weight`] from `x` and `dz` → `dw` (trainable layers only);
//! 4. [`conv::emit_conv2d_weight_transpose`] then [`conv::emit_conv2d_backward_input`] → `dx`
//!    (only above the lowest trainable layer; the transpose runs once per step, after the
//!    kernel changes);
//! 5. after the whole backward pass, one [`super::optimizer`] kernel per parameter tensor.
//!
//! Must not depend on anything of the `cnntui` crate.

pub mod activation;
pub mod batch_norm;
pub mod conv;
pub mod dense;
pub mod depthwise;
pub mod pool;
#[cfg(test)]
pub(crate) mod testing;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{BlockArg, InstBuilder, Value, types};

use super::{Emit, JitError};

/// `n` rounded up to a multiple of 4 (a whole number of `f32x4`).
pub(crate) fn round4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// `for (i, p_0, p_1, …) in (lo..hi).zip(bases stepping by strides)`: a loop tested at the
/// top whose pointers advance by a constant stride per iteration (no multiply in the loop).
/// `body` gets the pointers of each iteration.
pub(crate) fn for_strided(
    e: &mut Emit<'_, '_>,
    lo: Value,
    hi: Value,
    bases: &[(Value, i64)],
    mut body: impl FnMut(&mut Emit<'_, '_>, &[Value]) -> Result<(), JitError>,
) -> Result<(), JitError> {
    let header = e.b.create_block();
    let inner = e.b.create_block();
    let exit = e.b.create_block();
    e.b.append_block_param(header, types::I64);
    for _ in bases {
        e.b.append_block_param(header, e.ptr);
    }
    let mut args = vec![BlockArg::Value(lo)];
    args.extend(bases.iter().map(|&(p, _)| BlockArg::Value(p)));
    e.b.ins().jump(header, &args);
    e.b.switch_to_block(header);
    let params = e.b.block_params(header).to_vec();
    let more = e.b.ins().icmp(IntCC::SignedLessThan, params[0], hi);
    e.b.ins().brif(more, inner, &[], exit, &[]);
    e.b.switch_to_block(inner);
    e.b.seal_block(inner);
    body(e, &params[1..])?;
    let mut next = vec![BlockArg::Value(e.b.ins().iadd_imm_s(params[0], 1))];
    for (&p, &(_, stride)) in params[1..].iter().zip(bases) {
        next.push(BlockArg::Value(e.b.ins().iadd_imm_s(p, stride)));
    }
    e.b.ins().jump(header, &next);
    e.b.seal_block(header);
    e.b.switch_to_block(exit);
    e.b.seal_block(exit);
    Ok(())
}

/// An `i64` constant from a `usize` shape quantity.
pub(crate) fn c64(e: &mut Emit<'_, '_>, v: usize) -> Value {
    e.iconst(v as i64)
}

/// Runs `body(e, ptrs, lanes)` over `len` contiguous floats from each of `bases`, one `f32x4`
/// at a time (pointers advance 16 bytes), the last with `len % 4` lanes when `len` is not a
/// multiple of 4.
///
/// # Errors
/// Whatever `body` returns.
pub(crate) fn for_vectors(
    e: &mut Emit<'_, '_>,
    len: usize,
    bases: &[Value],
    mut body: impl FnMut(&mut Emit<'_, '_>, &[Value], usize) -> Result<(), JitError>,
) -> Result<(), JitError> {
    let (zero, full) = (c64(e, 0), c64(e, len / 4));
    let strided: Vec<(Value, i64)> = bases.iter().map(|&b| (b, 16)).collect();
    for_strided(e, zero, full, &strided, |e, p| body(e, p, 4))?;
    if !len.is_multiple_of(4) {
        let ptrs: Vec<Value> = bases
            .iter()
            .map(|&b| e.b.ins().iadd_imm_s(b, (len / 4 * 16) as i64))
            .collect();
        body(e, &ptrs, len % 4)?;
    }
    Ok(())
}

/// The work items of an element-wise kernel over `len` floats: item `i` is elements
/// `4i .. min(4i + 4, len)` of every buffer in `bases`; `body(e, ptrs, lanes)` runs once per
/// item of the call's range, with `lanes < 4` only for the last item when `len % 4 != 0`.
/// Returns the item count, `ceil(len / 4)`.
///
/// # Errors
/// Whatever `body` returns.
pub(crate) fn for_vector_items(
    e: &mut Emit<'_, '_>,
    len: usize,
    bases: &[Value],
    mut body: impl FnMut(&mut Emit<'_, '_>, &[Value], usize) -> Result<(), JitError>,
) -> Result<usize, JitError> {
    let (start, end) = (e.start, e.end);
    let full = c64(e, len / 4);
    let hi = e.imin(end, full);
    let strided: Vec<(Value, i64)> = bases.iter().map(|&b| (e.addr(b, start, 16), 16)).collect();
    for_strided(e, start, hi, &strided, |e, p| body(e, p, 4))?;
    if !len.is_multiple_of(4) {
        let from = e.b.ins().icmp(IntCC::SignedLessThanOrEqual, start, full);
        let to = e.b.ins().icmp(IntCC::SignedGreaterThan, end, full);
        let covers = e.b.ins().band(from, to);
        e.if_then(covers, |e| {
            let ptrs: Vec<Value> = bases
                .iter()
                .map(|&b| e.b.ins().iadd_imm_s(b, (len / 4 * 16) as i64))
                .collect();
            body(e, &ptrs, len % 4)
        })?;
    }
    Ok(len.div_ceil(4))
}

/// [`for_strided`] unrolled by `u`: `body(e, ptrs, k)` runs for sub-step `k` of `0..u` with
/// the iteration's base pointers (sub-step `k` addresses `ptr + k·stride`, a constant offset),
/// then a remainder loop runs the last `(hi - lo) % u` iterations with `k = 0`. Unrolling
/// amortises the register moves the loop's back edge needs: `fma` results land in the
/// multiplicand's register, not the accumulator's.
pub(crate) fn for_strided_unrolled(
    e: &mut Emit<'_, '_>,
    lo: Value,
    hi: Value,
    bases: &[(Value, i64)],
    u: usize,
    mut body: impl FnMut(&mut Emit<'_, '_>, &[Value], usize) -> Result<(), JitError>,
) -> Result<(), JitError> {
    let header = e.b.create_block();
    let inner = e.b.create_block();
    let exit = e.b.create_block();
    for b in [header, exit] {
        e.b.append_block_param(b, types::I64);
        for _ in bases {
            e.b.append_block_param(b, e.ptr);
        }
    }
    let lim = e.b.ins().iadd_imm_s(hi, 1 - u as i64);
    let mut args = vec![BlockArg::Value(lo)];
    args.extend(bases.iter().map(|&(p, _)| BlockArg::Value(p)));
    e.b.ins().jump(header, &args);
    e.b.switch_to_block(header);
    let params = e.b.block_params(header).to_vec();
    let more = e.b.ins().icmp(IntCC::SignedLessThan, params[0], lim);
    let out: Vec<BlockArg> = params.iter().map(|&p| BlockArg::Value(p)).collect();
    e.b.ins().brif(more, inner, &[], exit, &out);
    e.b.switch_to_block(inner);
    e.b.seal_block(inner);
    for k in 0..u {
        body(e, &params[1..], k)?;
    }
    let mut next = vec![BlockArg::Value(e.b.ins().iadd_imm_s(params[0], u as i64))];
    for (&p, &(_, stride)) in params[1..].iter().zip(bases) {
        next.push(BlockArg::Value(e.b.ins().iadd_imm_s(p, stride * u as i64)));
    }
    e.b.ins().jump(header, &next);
    e.b.seal_block(header);
    e.b.switch_to_block(exit);
    e.b.seal_block(exit);
    let rest = e.b.block_params(exit).to_vec();
    let tail: Vec<(Value, i64)> = rest[1..]
        .iter()
        .zip(bases)
        .map(|(&p, &(_, s))| (p, s))
        .collect();
    if u > 1 {
        for_strided(e, rest[0], hi, &tail, |e, p| body(e, p, 0))?;
    }
    Ok(())
}
