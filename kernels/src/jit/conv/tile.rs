//! The register-blocked micro-kernel shared by the convolution and dense emitters: a tile of
//! accumulators (pixels × output-channel lanes) kept in `xmm` registers, the reduction that
//! fills it (broadcast an input scalar, multiply by contiguous weight vectors), and the fused
//! epilogue that turns it into outputs (bias, folded batch-norm, residual, activation, dead
//! count, store).
//!
//! The reduction loop is unrolled ×4 and tested at the top, with every address a constant
//! offset from two running pointers. One step loads the tile's weight vectors, then, pixel by
//! pixel, broadcasts the pixel's input once and multiplies it into every lane group's
//! accumulator. Cranelift's x64 `fma` is `vfmadd213ps`/`vfmadd132ps`, whose result overwrites
//! a multiplicand, so every use of a shared broadcast but the last goes through a register
//! copy (`movdqa`, eliminated at rename). The copies are cheaper than the alternative, a
//! fresh `vbroadcastss` per FMA: on Zen a broadcast is a load *and* an FP-pipe shuffle that
//! competes with the FMAs, and a 4 × 8 tile then issues 10 loads and 8 shuffles per 8 FMAs
//! instead of 6 and 4. A vector tile is 4 pixels × 8 channels: 8 accumulators, 2 weight
//! vectors, a broadcast and its copy fit the 16 `xmm` registers without a spill; a 5 × 8 tile
//! (10 accumulators) spills a value per unrolled iteration and measured no faster. A
//! one-pixel tile ([`V8`]) keeps its broadcast and reads each weight vector, used once, as
//! the FMA's memory operand.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, StackSlot, Type, Value, types};
use cranelift_frontend::Variable;

use crate::jit::Emit;
use crate::jit::builder::F32X4;
use crate::reference::Activation;

/// Reduction steps per loop iteration.
const UNROLL: usize = 4;

/// A group of output channels a tile covers: where each lane group sits (byte offset from
/// the group's first channel) and its type (`f32x4`, or `f32` for remainder channels), and
/// how many pixels (or rows) the tile spans.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Group {
    pub lanes: &'static [(i32, Type)],
    /// Channels covered.
    pub width: usize,
    /// Pixels per tile: at most 8 vector accumulators (see the module docs).
    pub pixels: usize,
}

pub(crate) const V2: Group = Group {
    lanes: &[(0, F32X4), (16, F32X4)],
    width: 8,
    pixels: 4,
};
pub(crate) const V1: Group = Group {
    lanes: &[(0, F32X4)],
    width: 4,
    pixels: 8,
};
/// One pixel of 32 channels (four 8-channel groups, each in its own weight panel): what a
/// column whose window crosses the padding uses, so that it still has 8 independent
/// accumulators (a 1 × 8 tile has two, and waits on the FMA latency).
pub(crate) const V8: Group = Group {
    lanes: &[
        (0, F32X4),
        (16, F32X4),
        (32, F32X4),
        (48, F32X4),
        (64, F32X4),
        (80, F32X4),
        (96, F32X4),
        (112, F32X4),
    ],
    width: 32,
    pixels: 1,
};
const S1: Group = Group {
    lanes: &[(0, types::F32)],
    width: 1,
    pixels: 4,
};
const S2: Group = Group {
    lanes: &[(0, types::F32), (4, types::F32)],
    width: 2,
    pixels: 4,
};
const S3: Group = Group {
    lanes: &[(0, types::F32), (4, types::F32), (8, types::F32)],
    width: 3,
    pixels: 3,
};

/// A run of `count` consecutive channel groups starting at channel `start`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    pub group: Group,
    pub start: usize,
    pub count: usize,
}

/// Splits `c` channels into runs: blocks of 8 (when `wide`), then at most one block of 4,
/// then 1–3 scalar channels.
pub(crate) fn channel_runs(c: usize, wide: bool) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut at = 0;
    if wide && c >= 8 {
        runs.push(Run {
            group: V2,
            start: 0,
            count: c / 8,
        });
        at = c / 8 * 8;
    }
    if c - at >= 4 {
        let count = if wide { 1 } else { (c - at) / 4 };
        runs.push(Run {
            group: V1,
            start: at,
            count,
        });
        at += count * 4;
    }
    let scalar = match c - at {
        1 => Some(S1),
        2 => Some(S2),
        3 => Some(S3),
        _ => None,
    };
    if let Some(group) = scalar {
        runs.push(Run {
            group,
            start: at,
            count: 1,
        });
    }
    runs
}

/// Memory flags for buffer and stack accesses: valid, 4-byte aligned, no trap metadata.
pub(crate) fn flags() -> MemFlagsData {
    let mut f = MemFlagsData::new();
    let _ = f.set_by_name("notrap");
    f
}

/// `0.0` of type `ty` (`f32` or `f32x4`).
pub(crate) fn zero(e: &mut Emit<'_, '_>, ty: Type) -> Value {
    constant(e, ty, 0.0)
}

/// `v` of type `ty` (`f32` or `f32x4`).
pub(crate) fn constant(e: &mut Emit<'_, '_>, ty: Type, v: f32) -> Value {
    if ty == F32X4 {
        e.splat(v)
    } else {
        e.f32const(v)
    }
}

/// A value of type `ty` loaded from `p + offset`.
pub(crate) fn load(e: &mut Emit<'_, '_>, ty: Type, p: Value, offset: i32) -> Value {
    e.b.ins().load(ty, flags(), p, offset)
}

/// The `f32` at `p + offset`, in every lane when `ty` is a vector.
fn broadcast(e: &mut Emit<'_, '_>, ty: Type, p: Value, offset: i32) -> Value {
    if ty == F32X4 {
        e.load_splat(p, offset)
    } else {
        e.load_f32(p, offset)
    }
}

/// `max(a, b)` lane-wise, as one `vmaxps`/`vmaxss` (`b` wins when `a < b`; NaN in `a` stays).
pub(crate) fn max_of(e: &mut Emit<'_, '_>, a: Value, b: Value) -> Value {
    if e.b.func.dfg.value_type(a) == F32X4 {
        e.max(a, b)
    } else {
        let lt = e.b.ins().fcmp(FloatCC::LessThan, a, b);
        e.b.ins().select(lt, b, a)
    }
}

/// `min(a, b)` lane-wise (`b` wins when `b < a`).
pub(crate) fn min_of(e: &mut Emit<'_, '_>, a: Value, b: Value) -> Value {
    if e.b.func.dfg.value_type(a) == F32X4 {
        e.min(a, b)
    } else {
        let lt = e.b.ins().fcmp(FloatCC::LessThan, b, a);
        e.b.ins().select(lt, b, a)
    }
}

/// `act(v)` for the piecewise-linear activations (the emitters reject the others first).
pub(crate) fn activate(e: &mut Emit<'_, '_>, act: Activation, v: Value) -> Value {
    let ty = e.b.func.dfg.value_type(v);
    match act {
        Activation::ReLU => {
            let z = zero(e, ty);
            max_of(e, v, z)
        }
        Activation::ReLU6 => {
            let z = zero(e, ty);
            let v = max_of(e, v, z);
            let six = constant(e, ty, 6.0);
            min_of(e, v, six)
        }
        _ => v,
    }
}

/// Whether the emitters compute `act` in-kernel.
pub(crate) fn supported_activation(act: Activation) -> bool {
    matches!(
        act,
        Activation::Linear | Activation::ReLU | Activation::ReLU6
    )
}

/// The accumulators of one tile, pixel-major: `acc[p * lanes + g]`.
pub(crate) struct Tile {
    pub group: Group,
    pub pixels: usize,
    pub acc: Vec<Variable>,
    /// Byte offset of each lane group's weights from the reduction's weight pointer: the
    /// lanes' own offsets unless set with [`Tile::with_weight_offsets`].
    pub w_offsets: Vec<i32>,
    /// Byte offsets of each pixel's input and output from the tile's pointers, when the
    /// pixels are not evenly spaced (set with [`Tile::with_pixel_offsets`]); otherwise
    /// pixel `p` is at `p` times the stride the reduction and the epilogue are given.
    pub px_offsets: Option<(Vec<i32>, Vec<i32>)>,
}

impl Tile {
    /// A tile of `pixels` pixels of `group`, every accumulator zero.
    pub(crate) fn zeroed(e: &mut Emit<'_, '_>, group: Group, pixels: usize) -> Tile {
        let mut acc = Vec::with_capacity(pixels * group.lanes.len());
        for _ in 0..pixels {
            for &(_, ty) in group.lanes {
                let z = zero(e, ty);
                acc.push(e.var(ty, z));
            }
        }
        Tile::new(group, pixels, acc)
    }

    fn new(group: Group, pixels: usize, acc: Vec<Variable>) -> Tile {
        let w_offsets = group.lanes.iter().map(|&(off, _)| off).collect();
        Tile {
            group,
            pixels,
            acc,
            w_offsets,
            px_offsets: None,
        }
    }

    /// This tile with pixel `p` reading its input at `x[p]` and storing at `dst[p]` bytes
    /// from the pointers given to [`Tile::reduce`] and [`Epilogue::emit`] (their pixel
    /// strides are then ignored).
    pub(crate) fn with_pixel_offsets(mut self, x: Vec<i32>, dst: Vec<i32>) -> Tile {
        debug_assert_eq!((x.len(), dst.len()), (self.pixels, self.pixels));
        self.px_offsets = Some((x, dst));
        self
    }

    /// Byte offset of pixel `p`'s input, pixels `x_px` apart unless set otherwise.
    fn x_at(&self, p: usize, x_px: i32) -> i32 {
        self.px_offsets
            .as_ref()
            .map_or(p as i32 * x_px, |(x, _)| x[p])
    }

    /// Byte offset of pixel `p`'s output, pixels `dst_px` apart unless set otherwise.
    fn dst_at(&self, p: usize, dst_px: i32) -> i32 {
        self.px_offsets
            .as_ref()
            .map_or(p as i32 * dst_px, |(_, d)| d[p])
    }

    /// This tile reading lane group `g`'s weights at `offsets[g]` from the weight pointer
    /// (for a group whose channels lie in several panels).
    pub(crate) fn with_weight_offsets(mut self, offsets: Vec<i32>) -> Tile {
        debug_assert_eq!(offsets.len(), self.group.lanes.len());
        self.w_offsets = offsets;
        self
    }

    /// A tile of `pixels` pixels of `group` starting from the values at `p + px·pixel`.
    pub(crate) fn loaded(
        e: &mut Emit<'_, '_>,
        group: Group,
        pixels: usize,
        p: Value,
        px: i32,
    ) -> Tile {
        let mut acc = Vec::with_capacity(pixels * group.lanes.len());
        for pixel in 0..pixels {
            for &(off, ty) in group.lanes {
                let v = load(e, ty, p, pixel as i32 * px + off);
                acc.push(e.var(ty, v));
            }
        }
        Tile::new(group, pixels, acc)
    }

    /// Stores the raw accumulators at `p + px·pixel` (a partial sum).
    pub(crate) fn store(&self, e: &mut Emit<'_, '_>, p: Value, px: i32) {
        let lanes = self.group.lanes;
        for pixel in 0..self.pixels {
            for (g, &(off, _)) in lanes.iter().enumerate() {
                let v = e.b.use_var(self.acc[pixel * lanes.len() + g]);
                e.store(v, p, pixel as i32 * px + off);
            }
        }
    }

    /// `acc[p][g] += Σ_r x[p][r] · w[r][g]` over `r in 0..len`, where `x[p][r]` is the `f32` at
    /// `x + p·x_px + 4r` and `w[r][g]` the lane group `g` at `w + r·w_step`.
    pub(crate) fn reduce(
        &self,
        e: &mut Emit<'_, '_>,
        x: Value,
        x_px: i32,
        w: Value,
        w_step: i32,
        len: usize,
    ) {
        self.reduce_strided(e, (x, x_px, 4), w, w_step, len);
    }

    /// [`Tile::reduce`] with `x[p][r]` at `x + p·x_px + r·x_step`.
    pub(crate) fn reduce_strided(
        &self,
        e: &mut Emit<'_, '_>,
        (x, x_px, x_step): (Value, i32, i32),
        w: Value,
        w_step: i32,
        len: usize,
    ) {
        let iters = len / UNROLL;
        let (mut xp, mut wp) = (x, w);
        let x_unrolled = UNROLL as i64 * i64::from(x_step);
        if iters >= 2 {
            // Tested at the top: the loop body has no block parameters of its own (the
            // accumulators live in the header's), which is what lets Cranelift sink a
            // single-use load into its user (`vbroadcastss mem` in one-lane-group tiles, a
            // weight vector as the FMA's memory operand in one-pixel tiles); it does not in
            // a block that takes parameters.
            let ptr = e.ptr;
            let x_end = e.b.ins().iadd_imm_s(x, iters as i64 * x_unrolled);
            let wv = e.var(ptr, w);
            let looped = e.for_range(x, x_end, x_unrolled, |e, xi| {
                let wi = e.b.use_var(wv);
                for u in 0..UNROLL {
                    self.step(e, xi, x_px, u as i32 * x_step, wi, u as i32 * w_step);
                }
                let wn = e.b.ins().iadd_imm_s(wi, UNROLL as i64 * w_step as i64);
                e.b.def_var(wv, wn);
                Ok(())
            });
            debug_assert!(looped.is_ok());
            xp = x_end;
            wp = e.b.use_var(wv);
        } else if iters == 1 {
            for u in 0..UNROLL {
                self.step(e, xp, x_px, u as i32 * x_step, wp, u as i32 * w_step);
            }
            xp = e.b.ins().iadd_imm_s(xp, x_unrolled);
            wp = e.b.ins().iadd_imm_s(wp, UNROLL as i64 * w_step as i64);
        }
        for u in 0..len % UNROLL {
            self.step(e, xp, x_px, u as i32 * x_step, wp, u as i32 * w_step);
        }
    }

    /// One reduction step: each pixel's input broadcast once and multiplied into every lane
    /// group's accumulator (see the module docs for the register budget).
    fn step(&self, e: &mut Emit<'_, '_>, xp: Value, x_px: i32, x_off: i32, wp: Value, w_off: i32) {
        let ty = self.group.lanes[0].1;
        let lanes = self.group.lanes.len();
        let weight = |e: &mut Emit<'_, '_>, g: usize| {
            load(e, self.group.lanes[g].1, wp, w_off + self.w_offsets[g])
        };
        if self.pixels == 1 {
            // One pixel: its broadcast is the only shared value; each weight vector is used
            // once, so it is read straight from memory by the FMA.
            let xb = broadcast(e, ty, xp, self.x_at(0, x_px) + x_off);
            for g in 0..lanes {
                let wg = weight(e, g);
                let a = e.b.use_var(self.acc[g]);
                let a = e.fma(xb, wg, a);
                e.b.def_var(self.acc[g], a);
            }
            return;
        }
        let ws: Vec<Value> = (0..lanes).map(|g| weight(e, g)).collect();
        for p in 0..self.pixels {
            let xb = broadcast(e, ty, xp, self.x_at(p, x_px) + x_off);
            for (g, &wg) in ws.iter().enumerate() {
                let var = self.acc[p * lanes + g];
                let a = e.b.use_var(var);
                let a = e.fma(xb, wg, a);
                e.b.def_var(var, a);
            }
        }
    }
}

/// What the epilogue applies, in this order: `+ bias`, `· scale + shift`, `+ residual`,
/// activation; then it counts exact zeros (into `dead`) and stores.
pub(crate) struct Epilogue {
    /// Buffer index of each per-channel operand.
    pub bias: Option<usize>,
    pub scale_shift: Option<(usize, usize)>,
    pub activation: Activation,
    /// Stack slot of the running zero count: an `i32x4` at 0 and an `i32` at 16.
    pub dead: Option<StackSlot>,
}

impl Epilogue {
    /// Finishes `tile` for channels from `co` (a byte offset `co·4` is added to every
    /// per-channel pointer): pixel `p` reads its residual at `res + p·res_px` and is stored
    /// at `dst + p·dst_px` (both pointers already at the tile's first pixel and channel).
    pub(crate) fn emit(
        &self,
        e: &mut Emit<'_, '_>,
        tile: &Tile,
        co: Value,
        dst: Value,
        dst_px: i32,
        res: Option<(Value, i32)>,
    ) {
        let lanes = tile.group.lanes;
        let co_bytes = e.b.ins().ishl_imm_s(co, 2);
        let per_channel = |e: &mut Emit<'_, '_>, buf: usize| {
            let base = e.buffer(buf);
            let base = e.b.ins().iadd(base, co_bytes);
            lanes
                .iter()
                .map(|&(off, ty)| load(e, ty, base, off))
                .collect::<Vec<_>>()
        };
        let bias = self.bias.map(|b| per_channel(e, b));
        let bn = self
            .scale_shift
            .map(|(s, t)| (per_channel(e, s), per_channel(e, t)));
        let mut dead_v: Option<Value> = None;
        let mut dead_s: Option<Value> = None;
        for p in 0..tile.pixels {
            for (g, &(off, ty)) in lanes.iter().enumerate() {
                let mut v = e.b.use_var(tile.acc[p * lanes.len() + g]);
                if let Some(b) = &bias {
                    v = e.b.ins().fadd(v, b[g]);
                }
                if let Some((s, t)) = &bn {
                    v = e.fma(v, s[g], t[g]);
                }
                if let Some((r, r_px)) = res {
                    let rv = load(e, ty, r, p as i32 * r_px + off);
                    v = e.b.ins().fadd(v, rv);
                }
                v = activate(e, self.activation, v);
                if self.dead.is_some() {
                    let z = zero(e, ty);
                    let is_zero = e.b.ins().fcmp(FloatCC::Equal, v, z);
                    if ty == F32X4 {
                        // A true lane is -1: subtracting counts it.
                        dead_v = Some(match dead_v {
                            Some(d) => e.b.ins().isub(d, is_zero),
                            None => e.b.ins().ineg(is_zero),
                        });
                    } else {
                        let one = e.b.ins().uextend(types::I32, is_zero);
                        dead_s = Some(match dead_s {
                            Some(d) => e.b.ins().iadd(d, one),
                            None => one,
                        });
                    }
                }
                e.store(v, dst, tile.dst_at(p, dst_px) + off);
            }
        }
        if let Some(slot) = self.dead {
            let ptr = e.ptr;
            let at = e.b.ins().stack_addr(ptr, slot, 0);
            if let Some(d) = dead_v {
                let old = e.b.ins().load(types::I32X4, flags(), at, 0);
                let new = e.b.ins().iadd(old, d);
                e.store(new, at, 0);
            }
            if let Some(d) = dead_s {
                let old = e.b.ins().load(types::I32, flags(), at, 16);
                let new = e.b.ins().iadd(old, d);
                e.store(new, at, 16);
            }
        }
    }
}

/// Creates the zero-count stack slot of [`Epilogue::dead`].
pub(crate) fn dead_slot(e: &mut Emit<'_, '_>) -> StackSlot {
    use cranelift_codegen::ir::{StackSlotData, StackSlotKind};
    e.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 32, 4))
}

/// Zeroes the count in `slot`.
pub(crate) fn reset_dead(e: &mut Emit<'_, '_>, slot: StackSlot) {
    let ptr = e.ptr;
    let at = e.b.ins().stack_addr(ptr, slot, 0);
    let z = e.b.ins().iconst(types::I32, 0);
    let zv = e.b.ins().splat(types::I32X4, z);
    e.store(zv, at, 0);
    e.store(z, at, 16);
}

/// Stores the count in `slot` as a `u32` at `dst`.
pub(crate) fn store_dead(e: &mut Emit<'_, '_>, slot: StackSlot, dst: Value) {
    let ptr = e.ptr;
    let at = e.b.ins().stack_addr(ptr, slot, 0);
    let v = e.b.ins().load(types::I32X4, flags(), at, 0);
    let mut sum = e.b.ins().load(types::I32, flags(), at, 16);
    for lane in 0..4u8 {
        let l = e.b.ins().extractlane(v, lane);
        sum = e.b.ins().iadd(sum, l);
    }
    e.store(sum, dst, 0);
}
