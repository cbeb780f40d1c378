//! [`Emit`]: a thin layer over Cranelift's `FunctionBuilder` with what kernel emitters need —
//! buffer pointers, constants, `f32x4` arithmetic that lowers to single instructions, and
//! counted loops tested at the top.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{BlockArg, InstBuilder, MemFlagsData, Type, Value, types};
use cranelift_frontend::{FunctionBuilder, Variable};

use super::JitError;

/// `f32x4`, the only vector type Cranelift lowers on x86-64.
pub const F32X4: Type = types::F32X4;

/// Emits one kernel's body.
pub struct Emit<'a, 'b> {
    pub b: &'a mut FunctionBuilder<'b>,
    pub ptr: Type,
    buffers: Value,
    /// First work item of this call.
    pub start: Value,
    /// One past the last work item of this call.
    pub end: Value,
    flags: MemFlagsData,
}

impl<'a, 'b> Emit<'a, 'b> {
    pub(super) fn new(
        b: &'a mut FunctionBuilder<'b>,
        ptr: Type,
        buffers: Value,
        start: Value,
        end: Value,
    ) -> Self {
        // Buffers are valid for every access (the runtime checks sizes before calling), so
        // accesses need no trap metadata; they are only 4-byte aligned, so not `aligned`.
        let mut flags = MemFlagsData::new();
        let _ = flags.set_by_name("notrap");
        Emit {
            b,
            ptr,
            buffers,
            start,
            end,
            flags,
        }
    }

    pub(super) fn finish(&mut self) {
        self.b.ins().return_(&[]);
    }

    /// The `i`-th buffer pointer of the call.
    pub fn buffer(&mut self, i: usize) -> Value {
        let offset = (i * self.ptr.bytes() as usize) as i32;
        self.b
            .ins()
            .load(self.ptr, self.flags, self.buffers, offset)
    }

    pub fn iconst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }

    pub fn f32const(&mut self, v: f32) -> Value {
        self.b.ins().f32const(v)
    }

    /// `v` in every lane.
    pub fn splat(&mut self, v: f32) -> Value {
        let s = self.f32const(v);
        self.b.ins().splat(F32X4, s)
    }

    /// `base + index * scale + offset` (byte addressing).
    pub fn addr(&mut self, base: Value, index: Value, scale: i64) -> Value {
        let scaled = if scale == 1 {
            index
        } else {
            self.b.ins().imul_imm_s(index, scale)
        };
        self.b.ins().iadd(base, scaled)
    }

    pub fn load_f32(&mut self, p: Value, offset: i32) -> Value {
        self.b.ins().load(types::F32, self.flags, p, offset)
    }

    pub fn load_f32x4(&mut self, p: Value, offset: i32) -> Value {
        self.b.ins().load(F32X4, self.flags, p, offset)
    }

    pub fn store(&mut self, v: Value, p: Value, offset: i32) {
        self.b.ins().store(self.flags, v, p, offset);
    }

    /// A scalar loaded from memory into every lane.
    pub fn load_splat(&mut self, p: Value, offset: i32) -> Value {
        let s = self.load_f32(p, offset);
        self.b.ins().splat(F32X4, s)
    }

    /// `a * b + c`, one `vfmadd` (the JIT refuses to start without FMA).
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        self.b.ins().fma(a, b, c)
    }

    /// Lane-wise maximum as one `vmaxps`: `bitselect(a < b, b, a)`.
    pub fn max(&mut self, a: Value, b: Value) -> Value {
        let lt = self.mask(FloatCC::LessThan, a, b);
        self.b.ins().bitselect(lt, b, a)
    }

    /// A lane mask `a cc b`, typed `f32x4` so it feeds `bitselect` directly.
    pub fn mask(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        let m = self.b.ins().fcmp(cc, a, b);
        // Little-endian lane order: a plain bit reinterpretation.
        let mut little = MemFlagsData::new();
        let _ = little.set_by_name("little");
        self.b.ins().bitcast(F32X4, little, m)
    }

    /// Lane-wise minimum as one `vminps`: `bitselect(b < a, b, a)`.
    pub fn min(&mut self, a: Value, b: Value) -> Value {
        let lt = self.mask(FloatCC::LessThan, b, a);
        self.b.ins().bitselect(lt, b, a)
    }

    /// A mutable variable of type `ty`, initialised to `init`.
    pub fn var(&mut self, ty: Type, init: Value) -> Variable {
        let v = self.b.declare_var(ty);
        self.b.def_var(v, init);
        v
    }

    /// `for i in (start..end).step_by(step) { body(i) }`, tested at the top.
    ///
    /// # Errors
    /// Whatever `body` returns.
    pub fn for_range(
        &mut self,
        start: Value,
        end: Value,
        step: i64,
        mut body: impl FnMut(&mut Self, Value) -> Result<(), JitError>,
    ) -> Result<(), JitError> {
        let header = self.b.create_block();
        let inner = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, types::I64);
        self.b.ins().jump(header, &[BlockArg::Value(start)]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        let more = self.b.ins().icmp(IntCC::SignedLessThan, i, end);
        self.b.ins().brif(more, inner, &[], exit, &[]);
        self.b.switch_to_block(inner);
        self.b.seal_block(inner);
        body(self, i)?;
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.ins().jump(header, &[BlockArg::Value(next)]);
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        self.b.seal_block(exit);
        Ok(())
    }

    /// `for i in start..end` over the call's work items.
    ///
    /// # Errors
    /// Whatever `body` returns.
    pub fn for_items(
        &mut self,
        body: impl FnMut(&mut Self, Value) -> Result<(), JitError>,
    ) -> Result<(), JitError> {
        let (start, end) = (self.start, self.end);
        self.for_range(start, end, 1, body)
    }
    /// The first `lanes` (1–4) floats at `p + offset`, the other lanes zero: a vector load
    /// when `lanes == 4`, scalar loads otherwise, so a channel tail never reads past its row.
    pub fn load_partial(&mut self, p: Value, offset: i32, lanes: usize) -> Value {
        if lanes >= 4 {
            return self.load_f32x4(p, offset);
        }
        let mut v = self.splat(0.0);
        for lane in 0..lanes {
            let s = self.load_f32(p, offset + 4 * lane as i32);
            v = self.b.ins().insertlane(v, s, lane as u8);
        }
        v
    }

    /// Stores the first `lanes` (1–4) floats of `v` at `p + offset`, touching nothing after.
    pub fn store_partial(&mut self, v: Value, p: Value, offset: i32, lanes: usize) {
        if lanes >= 4 {
            return self.store(v, p, offset);
        }
        for lane in 0..lanes {
            let s = self.b.ins().extractlane(v, lane as u8);
            self.store(s, p, offset + 4 * lane as i32);
        }
    }

    /// `if cond != 0 { body }`; values `body` defines through [`Variable`]s are merged after.
    ///
    /// # Errors
    /// Whatever `body` returns.
    pub fn if_then(
        &mut self,
        cond: Value,
        body: impl FnOnce(&mut Self) -> Result<(), JitError>,
    ) -> Result<(), JitError> {
        let then = self.b.create_block();
        let merge = self.b.create_block();
        self.b.ins().brif(cond, then, &[], merge, &[]);
        self.b.switch_to_block(then);
        self.b.seal_block(then);
        body(self)?;
        self.b.ins().jump(merge, &[]);
        self.b.switch_to_block(merge);
        self.b.seal_block(merge);
        Ok(())
    }

    /// `if cond != 0 { then } else { otherwise }`; values either branch defines through
    /// [`Variable`]s are merged after.
    ///
    /// # Errors
    /// Whatever a branch returns.
    pub fn if_else(
        &mut self,
        cond: Value,
        then: impl FnOnce(&mut Self) -> Result<(), JitError>,
        otherwise: impl FnOnce(&mut Self) -> Result<(), JitError>,
    ) -> Result<(), JitError> {
        let (yes, no, merge) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        self.b.ins().brif(cond, yes, &[], no, &[]);
        self.b.switch_to_block(yes);
        self.b.seal_block(yes);
        then(self)?;
        self.b.ins().jump(merge, &[]);
        self.b.switch_to_block(no);
        self.b.seal_block(no);
        otherwise(self)?;
        self.b.ins().jump(merge, &[]);
        self.b.switch_to_block(merge);
        self.b.seal_block(merge);
        Ok(())
    }

    /// `body(start + k·step)` for `k in 0..count`: a loop, or the body once without one when
    /// `count` is 1 (nothing when 0).
    ///
    /// # Errors
    /// Whatever `body` returns.
    pub fn for_steps(
        &mut self,
        start: usize,
        count: usize,
        step: usize,
        mut body: impl FnMut(&mut Self, Value) -> Result<(), JitError>,
    ) -> Result<(), JitError> {
        match count {
            0 => Ok(()),
            1 => {
                let at = self.iconst(start as i64);
                body(self, at)
            }
            _ => {
                let s = self.iconst(start as i64);
                let end = self.iconst((start + count * step) as i64);
                self.for_range(s, end, step as i64, body)
            }
        }
    }

    /// `body(at, len)` over `0..count` in blocks of `size`: the full blocks in a loop, then
    /// the rest (`len` < `size`) once. `at` is a block's first element times `scale` (1 for
    /// an index, 4 for the byte offset of an `f32`).
    pub fn for_blocks(
        &mut self,
        count: usize,
        size: usize,
        scale: usize,
        mut body: impl FnMut(&mut Self, Value, usize),
    ) {
        let full = count / size * size;
        if full > 0 {
            let (start, end) = (self.iconst(0), self.iconst((full * scale) as i64));
            let looped = self.for_range(start, end, (size * scale) as i64, |e, at| {
                body(e, at, size);
                Ok(())
            });
            debug_assert!(looped.is_ok());
        }
        if count > full {
            let at = self.iconst((full * scale) as i64);
            body(self, at, count - full);
        }
    }

    /// `min(a, b)` of two `i64`s (work-item bounds).
    pub fn imin(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().smin(a, b)
    }

    /// `max(a, b)` of two `i64`s.
    pub fn imax(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().smax(a, b)
    }
}
