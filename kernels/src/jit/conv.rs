//! Forward `Conv2D` and `DepthwiseConv2D` as register-blocked direct convolutions (no im2col
//! buffer), with the fused epilogue the fusion pass produces:
//!
//! ```text
//! z = conv(x) (+ bias)
//! z = z · scale + shift        (bn: inference batch-norm folded to a per-channel affine map)
//! z = z + residual             (residual: a tensor shaped like the convolution's output)
//! z = act(z)                   (Linear, ReLU, ReLU6)
//! y = pool(z)                  (pool: max or average, any window, stride and padding)
//! ```
//!
//! That order covers conv → bias → ReLU → max-pool (VGG, the MNIST net), conv → BN → ReLU6
//! (MobileNet: BN before the activation) and conv → BN → add (a residual projection).
//!
//! A 3×3 stride-1 convolution that [`winograd::eligible`] accepts (when the spec allows it)
//! is emitted by [`winograd`] instead, with the same buffers (its kernel prepared by
//! [`WeightLayout::Winograd`]) plus a per-call scratch; everything below is the direct kernel.
//!
//! # Code shape
//! A conv output row is computed by channel groups (8 channels = two `f32x4`, then a block of
//! 4, then scalar channels) × column tiles of up to 4 pixels: one tile is 8 accumulators
//! (each pixel's input broadcast once per reduction step and shared by its channel vectors,
//! see `conv/tile.rs`),
//! reduced over the kernel rows (a runtime loop whose bounds clip the padding) and, inside,
//! over `(kw, ci)` flattened — contiguous both in the NHWC input and in the HWIO kernel, so
//! the weights need no repacking and every address is a constant offset from two pointers.
//! Columns whose window crosses the left or right padding are emitted one by one with their
//! own (constant) tap range; the interior columns run in a loop of full tiles plus one
//! shorter tile.
//!
//! # Weight panels
//! A regular convolution reads its kernel packed by [`pack_weights`]: the weights of one
//! channel group (8, 4 or 1–3 output channels) are one contiguous panel, `[k_h][k_w][c_in]`
//! of group-wide vectors. Read straight from HWIO, one group's weights are 32 bytes every
//! `c_out · 4` bytes: with 512 channels a tile touches a line in a different 4 KiB page at
//! every reduction step, twice the bytes it uses, and the TLB and the prefetcher lose track.
//! The panel is read sequentially instead, and a conv row computes every tile of a channel
//! group before moving on, so the panel (at most `9 · 512 · 32` bytes = 144 KiB) stays in
//! L2 while the row's tiles stream over it. Depthwise is vectorised across output channels instead (4 channels × 8
//! pixels), each tap a multiply of input and kernel vectors.
//!
//! With a pool fused, a work item computes the conv rows its pooled row needs into a stack
//! scratch (`k_h` rows, padded left and right with the pool's neutral value), then pools
//! them; the pre-pool activation is never written to a buffer. Overlapping pool windows
//! (stride < window) recompute the shared conv rows. Columns no window reads are not computed,
//! and under a valid convolution and an unpadded pool the item's conv rows may be one list of
//! pixels whose tiles span the rows (see `Emitter::emit_joint_rows`).
//!
//! Must not depend on anything of the `cnntui` crate.

pub(crate) mod tile;
pub mod winograd;

#[cfg(test)]
pub(crate) mod tests;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, StackSlot, StackSlotData, StackSlotKind, Value, types};

use self::tile::{Epilogue, Group, Tile, V2, V8, channel_runs, load};
use super::builder::F32X4;
use super::{Emit, Jit, JitError};
use crate::geom::{Conv2dGeom, Padding2d, window_out};
use crate::reference::Activation;

/// The largest pool scratch a kernel may put on its stack (rayon's worker stacks are 2 MiB).
pub const MAX_SCRATCH_BYTES: usize = 512 * 1024;

/// A pooling layer fused after the convolution (see the module docs for the order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolEpilogue {
    /// Max-pool when true, average-pool (padding excluded from the count) otherwise.
    pub max: bool,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad: Padding2d,
    /// The pooled output size; must equal what the window gives on the conv output.
    pub out_h: usize,
    pub out_w: usize,
    /// Write the max-pool's argmax (ignored for average pools).
    pub record_argmax: bool,
}

impl PoolEpilogue {
    /// A pool over a `conv_out = (h, w)` map, computing the output size; `None` when the
    /// window does not fit.
    pub fn new(
        max: bool,
        conv_out: (usize, usize),
        (k_h, k_w): (usize, usize),
        (stride_h, stride_w): (usize, usize),
        pad: Padding2d,
        record_argmax: bool,
    ) -> Option<Self> {
        Some(PoolEpilogue {
            max,
            k_h,
            k_w,
            stride_h,
            stride_w,
            pad,
            out_h: window_out(conv_out.0, pad.top, pad.bottom, k_h, stride_h)?,
            out_w: window_out(conv_out.1, pad.left, pad.right, k_w, stride_w)?,
            record_argmax,
        })
    }

    fn argmax(&self) -> bool {
        self.max && self.record_argmax
    }
}

/// What one fused forward convolution kernel computes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConvForwardSpec {
    /// The convolution; `n` is the largest batch the buffers hold — the kernel depends on it
    /// only through the item range.
    pub geom: Conv2dGeom,
    /// `Some(m)`: `DepthwiseConv2D` with depth multiplier `m` (`c_out = c_in · m`).
    pub depth_multiplier: Option<usize>,
    pub bias: bool,
    /// Per-channel `scale` and `shift` after the bias (inference batch-norm, folded).
    pub bn: bool,
    pub activation: Activation,
    /// Add a tensor shaped like the convolution's output before the activation.
    pub residual: bool,
    pub pool: Option<PoolEpilogue>,
    /// Write, per work item, how many pre-pool activations it computed that are exactly zero.
    pub count_dead: bool,
    /// Compute a 3×3 stride-1 convolution by Winograd's F(2×2, 3×3) when [`winograd`]
    /// supports the spec (fewer multiplies; see that module).
    pub winograd: bool,
}

/// How a forward kernel reads its `w` buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// HWIO as it is (depthwise convolutions).
    Hwio,
    /// Packed by [`pack_weights`].
    Panels,
    /// Transformed by [`winograd::transform_weights`].
    Winograd,
}

impl WeightLayout {
    /// Length of the prepared kernel of `g`.
    pub fn len(self, g: &Conv2dGeom, hwio_len: usize) -> usize {
        match self {
            WeightLayout::Hwio | WeightLayout::Panels => hwio_len,
            WeightLayout::Winograd => winograd::weights_len(g),
        }
    }

    /// Writes the HWIO kernel `w` of `g` in this layout to `out` (resized to fit).
    pub fn prepare(self, g: &Conv2dGeom, w: &[f32], out: &mut Vec<f32>) {
        out.resize(self.len(g, w.len()), 0.0);
        match self {
            WeightLayout::Hwio => out.copy_from_slice(w),
            WeightLayout::Panels => pack_weights(g, w, out),
            WeightLayout::Winograd => winograd::transform_weights(g, w, out),
        }
    }
}

/// Packs an HWIO kernel `w` (`[k_h, k_w, c_in, c_out]`) into the panels the forward kernel
/// of a regular (not depthwise) convolution reads: channel groups as
/// [`tile::channel_runs`] splits `c_out` (8 channels, then 4, then 1–3), each group of width
/// `gw` starting at channel `co` stored at `co · K` as `[k_h · k_w · c_in][gw]`, where
/// `K = k_h · k_w · c_in`. The packed kernel has the same length as `w`.
///
/// # Panics
/// When `w` or `packed` is shorter than `k_h · k_w · c_in · c_out`.
pub fn pack_weights(g: &Conv2dGeom, w: &[f32], packed: &mut [f32]) {
    pack_panels(g.k_h * g.k_w * g.c_in, g.c_out, w, packed);
}

/// Packs a `[k][c_out]` matrix into channel panels (see [`pack_weights`]).
pub(crate) fn pack_panels(k: usize, c_out: usize, w: &[f32], packed: &mut [f32]) {
    let (w, packed) = (&w[..k * c_out], &mut packed[..k * c_out]);
    for run in channel_runs(c_out, true) {
        let gw = run.group.width;
        for j in 0..run.count {
            let co = run.start + j * gw;
            let panel = &mut packed[co * k..(co + gw) * k];
            for (t, dst) in panel.chunks_exact_mut(gw).enumerate() {
                dst.copy_from_slice(&w[t * c_out + co..t * c_out + co + gw]);
            }
        }
    }
}

/// How to call a kernel from [`emit_conv_forward`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvForwardKernel {
    /// Buffer names in call order, a subset (in this order) of `x`, `w`, `bias`, `scale`,
    /// `shift`, `residual`, `y`, `argmax`, `dead`.
    pub buffers: Vec<&'static str>,
    /// Work items per sample; a call covers items `[start, end)` of `[0, n · items_per_sample)`.
    pub items_per_sample: usize,
    /// `(h, w, c)` of one sample of `y` (pooled when a pool is fused).
    pub out_shape: (usize, usize, usize),
    /// Bytes of stack scratch each call uses (the fused pool's conv rows).
    pub scratch_bytes: usize,
    /// Pre-pool activations the kernel computes per sample, what the `dead` counts of a
    /// sample's items add up over (a row covered by two windows counts twice).
    pub computed_per_sample: usize,
    /// How the kernel reads `w`.
    pub weights: WeightLayout,
    /// f32s of the `scratch` buffer (Winograd): every call needs its own
    /// ([`crate::jit::Bound::with_call_scratch`]); 0 without one.
    pub call_scratch: usize,
}

impl ConvForwardKernel {
    /// The position of buffer `name` in the call's buffer array.
    pub fn buffer(&self, name: &str) -> Option<usize> {
        self.buffers.iter().position(|b| *b == name)
    }
}

/// Emits the fused forward convolution `spec` as kernel `name`.
///
/// # Buffers
/// In this order, present when the spec asks for them:
/// - `x`: `[n, h, w, c_in]` f32; `w`: `[k_h, k_w, c_in, c_out]` packed by [`pack_weights`]
///   (depthwise: `[k_h, k_w, c_in, m]` as it is) f32;
/// - `bias`, `scale`, `shift`: `[c_out]` f32;
/// - `residual`: `[n, out_h, out_w, c_out]` f32 (the convolution's, pre-pool, shape);
/// - `y`: `[n, out_h, out_w, c_out]`, or `[n, pool.out_h, pool.out_w, c_out]` with a pool;
/// - `argmax` (max-pool with `record_argmax`): `[n, pool.out_h, pool.out_w, c_out]` u32, the
///   flat index of the winner in the sample's pre-pool tensor `[out_h, out_w, c_out]` — what
///   `reference::max_pool_forward` records when run on one sample's pre-pool activation
///   (padding never wins; ties go to the first in row-major window order; a window wholly in
///   padding outputs 0 and `u32::MAX`);
/// - `dead` (`count_dead`): `[n · items_per_sample]` u32.
///
/// # Work items
/// One output row of `y` per item: item `i` is sample `i / items_per_sample`, row
/// `i % items_per_sample` (`items_per_sample` = `out_h`, or `pool.out_h` with a pool). `dead[i]`
/// counts the exact zeros among the pre-pool activations item `i` computed: its conv row, or
/// with a pool every channel of the conv rows and columns its pooled row's windows cover (a
/// row shared by overlapping windows is counted by each item; rows and columns no window
/// covers are not computed).
///
/// # Errors
/// [`JitError::Unsupported`] for sigmoid, tanh and softmax epilogues, zero-sized shapes, an
/// output size that disagrees with the geometry, a per-sample pre-pool tensor too large for a
/// u32 argmax, or a pool scratch above [`MAX_SCRATCH_BYTES`]; [`JitError::Codegen`] from
/// Cranelift.
pub fn emit_conv_forward(
    jit: &mut Jit,
    name: &str,
    spec: &ConvForwardSpec,
) -> Result<ConvForwardKernel, JitError> {
    if winograd::eligible(spec) {
        return winograd::emit(jit, name, spec);
    }
    let layout = Layout::new(spec)?;
    jit.define(name, |e| {
        Emitter {
            s: spec,
            l: &layout,
        }
        .emit(e)
    })?;
    Ok(layout.kernel(&spec.geom))
}

/// A forward kernel's buffers in call order (see [`emit_conv_forward`]), and each one's
/// index: what the spec asks for, then (`scratch`) the Winograd kernel's per-call scratch.
pub(crate) struct Buffers {
    pub names: Vec<&'static str>,
    pub x: usize,
    pub w: usize,
    pub bias: Option<usize>,
    pub scale_shift: Option<(usize, usize)>,
    pub residual: Option<usize>,
    pub y: usize,
    pub argmax: Option<usize>,
    pub dead: Option<usize>,
}

impl Buffers {
    pub(crate) fn new(s: &ConvForwardSpec, scratch: bool) -> Buffers {
        let mut names = Vec::new();
        let mut add = |name| {
            names.push(name);
            names.len() - 1
        };
        let x = add("x");
        let w = add("w");
        let bias = s.bias.then(|| add("bias"));
        let scale_shift = s.bn.then(|| (add("scale"), add("shift")));
        let residual = s.residual.then(|| add("residual"));
        let y = add("y");
        let argmax = s.pool.filter(PoolEpilogue::argmax).map(|_| add("argmax"));
        let dead = s.count_dead.then(|| add("dead"));
        if scratch {
            add("scratch");
        }
        Buffers {
            names,
            x,
            w,
            bias,
            scale_shift,
            residual,
            y,
            argmax,
            dead,
        }
    }
}

/// Buffer indices and derived sizes of a spec, validated.
struct Layout {
    b: Buffers,
    items_per_sample: usize,
    out_shape: (usize, usize, usize),
    /// Interior conv columns `[lo, hi)`: every tap inside the input.
    interior: (usize, usize),
    pool: Option<PoolLayout>,
    depthwise: bool,
}

struct PoolLayout {
    p: PoolEpilogue,
    /// Channels rounded up to a multiple of 4.
    c_pad: usize,
    /// Scratch columns: `pad.left + conv out_w + pad.right`.
    cols: usize,
    bytes: usize,
    /// Conv columns some window covers, `[0, used)`: the others are not computed (the
    /// last column of an odd-width conv under a 2×2 pool).
    used: usize,
    /// The conv rows of a pooled row computed as one set of pixels (see
    /// [`Emitter::emit_joint_rows`]), when that takes at least a tenth fewer register tiles
    /// than row by row (MNIST's first conv would save 1 of 14 tiles and measured 4% slower
    /// jointly: its 13 tiles, emitted one after another, are more code than a loop).
    joint: bool,
}

/// Most pixels a joint pooled row may have: its tiles are emitted one after another.
const MAX_JOINT_PIXELS: usize = 64;

impl Layout {
    fn new(s: &ConvForwardSpec) -> Result<Self, JitError> {
        let g = &s.geom;
        let unsupported = |why: String| Err(JitError::Unsupported(why));
        if !tile::supported_activation(s.activation) {
            return unsupported(format!("fused {:?} epilogue", s.activation));
        }
        if [
            g.h, g.w, g.c_in, g.c_out, g.k_h, g.k_w, g.stride_h, g.stride_w,
        ]
        .contains(&0)
        {
            return unsupported(format!("zero-sized convolution {g:?}"));
        }
        if Some(g.out_h) != window_out(g.h, g.pad.top, g.pad.bottom, g.k_h, g.stride_h)
            || Some(g.out_w) != window_out(g.w, g.pad.left, g.pad.right, g.k_w, g.stride_w)
        {
            return unsupported(format!("inconsistent output size in {g:?}"));
        }
        if let Some(m) = s.depth_multiplier
            && (m == 0 || g.c_out != g.c_in * m)
        {
            return unsupported(format!("depthwise c_out {} != c_in · {m}", g.c_out));
        }
        let b = Buffers::new(s, false);

        let lo = g.pad.left.div_ceil(g.stride_w).min(g.out_w);
        let hi = if g.w + g.pad.left >= g.k_w {
            ((g.w + g.pad.left - g.k_w) / g.stride_w + 1).min(g.out_w)
        } else {
            0
        };
        let interior = (lo, hi.max(lo));

        let pool = match s.pool {
            None => None,
            Some(p) => {
                let fits = Some(p.out_h)
                    == window_out(g.out_h, p.pad.top, p.pad.bottom, p.k_h, p.stride_h)
                    && Some(p.out_w)
                        == window_out(g.out_w, p.pad.left, p.pad.right, p.k_w, p.stride_w);
                if !fits || p.out_h == 0 || p.out_w == 0 {
                    return unsupported(format!("pool {p:?} does not fit conv output"));
                }
                if g.out_h * g.out_w * g.c_out >= i32::MAX as usize {
                    return unsupported("pre-pool tensor too large for a u32 argmax".into());
                }
                let c_pad = g.c_out.div_ceil(4) * 4;
                let cols = p.pad.left + g.out_w + p.pad.right;
                let bytes = p.k_h * cols * c_pad * 4;
                if bytes > MAX_SCRATCH_BYTES {
                    return unsupported(format!("fused pool scratch of {bytes} bytes"));
                }
                let used = ((p.out_w - 1) * p.stride_w + p.k_w)
                    .saturating_sub(p.pad.left)
                    .min(g.out_w);
                let valid = g.pad == Padding2d::default() && p.pad == Padding2d::default();
                let pixels = p.k_h * used;
                let per = V2.pixels;
                let joint = valid
                    && s.depth_multiplier.is_none()
                    && !s.residual
                    && pixels <= MAX_JOINT_PIXELS
                    && pixels.div_ceil(per) * 10 <= p.k_h * used.div_ceil(per) * 9;
                Some(PoolLayout {
                    p,
                    c_pad,
                    cols,
                    bytes,
                    used,
                    joint,
                })
            }
        };
        let (items_per_sample, out_shape) = match &pool {
            None => (g.out_h, (g.out_h, g.out_w, g.c_out)),
            Some(pl) => (pl.p.out_h, (pl.p.out_h, pl.p.out_w, g.c_out)),
        };
        Ok(Layout {
            b,
            items_per_sample,
            out_shape,
            interior,
            pool,
            depthwise: s.depth_multiplier.is_some(),
        })
    }

    fn kernel(&self, g: &Conv2dGeom) -> ConvForwardKernel {
        let computed_per_sample = match &self.pool {
            None => g.out_h * g.out_w * g.c_out,
            Some(pl) => {
                let p = pl.p;
                let rows: usize = (0..p.out_h)
                    .map(|ph| {
                        let r0 = (ph * p.stride_h) as isize - p.pad.top as isize;
                        let r1 = (r0 + p.k_h as isize).min(g.out_h as isize);
                        (r1 - r0.max(0)).max(0) as usize
                    })
                    .sum();
                rows * pl.used * g.c_out
            }
        };
        ConvForwardKernel {
            buffers: self.b.names.clone(),
            items_per_sample: self.items_per_sample,
            out_shape: self.out_shape,
            scratch_bytes: self.pool.as_ref().map_or(0, |p| p.bytes),
            computed_per_sample,
            weights: if self.depthwise {
                WeightLayout::Hwio
            } else {
                WeightLayout::Panels
            },
            call_scratch: 0,
        }
    }
}

/// Where one conv row goes.
struct RowTarget {
    /// Pixel 0, channel 0 of the row.
    dst: Value,
    /// Bytes between pixels.
    dst_px: i32,
    /// Pixel 0 of the row in the residual.
    res: Option<Value>,
}

struct Emitter<'a> {
    s: &'a ConvForwardSpec,
    l: &'a Layout,
}

impl Emitter<'_> {
    fn emit(&self, e: &mut Emit<'_, '_>) -> Result<(), JitError> {
        let dead = self.l.b.dead.map(|_| tile::dead_slot(e));
        let epi = Epilogue {
            bias: self.l.b.bias,
            scale_shift: self.l.b.scale_shift,
            activation: self.s.activation,
            dead,
        };
        match &self.l.pool {
            None => self.emit_rows(e, &epi),
            Some(pl) => self.emit_pooled_rows(e, &epi, pl),
        }
    }

    /// Bytes of one kernel row `w[kh]`.
    fn w_row_bytes(&self) -> i64 {
        let g = self.s.geom;
        let per_tap = match self.s.depth_multiplier {
            None => g.c_in * g.c_out,
            Some(_) => g.c_out,
        };
        (g.k_w * per_tap * 4) as i64
    }

    fn row_bytes(&self) -> i64 {
        (self.s.geom.out_w * self.s.geom.c_out * 4) as i64
    }

    /// Without a pool: item = conv row, written straight to `y`.
    fn emit_rows(&self, e: &mut Emit<'_, '_>, epi: &Epilogue) -> Result<(), JitError> {
        let g = self.s.geom;
        e.for_items(|e, item| {
            if let Some(slot) = epi.dead {
                tile::reset_dead(e, slot);
            }
            let n = e.b.ins().udiv_imm_u(item, g.out_h as i64);
            let oh = e.b.ins().imul_imm_s(n, g.out_h as i64);
            let oh = e.b.ins().isub(item, oh);
            let y = e.buffer(self.l.b.y);
            let dst = e.addr(y, item, self.row_bytes());
            let res = self.l.b.residual.map(|r| {
                let r = e.buffer(r);
                e.addr(r, item, self.row_bytes())
            });
            let target = RowTarget {
                dst,
                dst_px: (g.c_out * 4) as i32,
                res,
            };
            self.emit_conv_row(e, epi, n, oh, &target, g.out_w)?;
            if let (Some(slot), Some(d)) = (epi.dead, self.l.b.dead) {
                let d = e.buffer(d);
                let d = e.addr(d, item, 4);
                tile::store_dead(e, slot, d);
            }
            Ok(())
        })
    }

    /// One conv output row `oh` of sample `n`.
    fn emit_conv_row(
        &self,
        e: &mut Emit<'_, '_>,
        epi: &Epilogue,
        n: Value,
        oh: Value,
        t: &RowTarget,
        cols: usize,
    ) -> Result<(), JitError> {
        let g = self.s.geom;
        // Kernel rows kh0..kh1 fall inside the input: t0 = oh·s - pad, kh0 = max(0, -t0),
        // kh1 = min(k_h, h - t0).
        let t0 = e.b.ins().imul_imm_s(oh, g.stride_h as i64);
        let t0 = e.b.ins().iadd_imm_s(t0, -(g.pad.top as i64));
        let neg = e.b.ins().ineg(t0);
        let zero = e.iconst(0);
        let kh0 = e.b.ins().smax(neg, zero);
        let h = e.iconst(g.h as i64);
        let h_minus = e.b.ins().isub(h, t0);
        let k_h = e.iconst(g.k_h as i64);
        let kh1 = e.b.ins().smin(h_minus, k_h);
        let kh_n = e.b.ins().isub(kh1, kh0);
        // x at (n, t0 + kh0, 0, 0) and w at (kh0, 0, 0, 0).
        let x = e.buffer(self.l.b.x);
        let img = e.b.ins().imul_imm_s(n, (g.h * g.w * g.c_in * 4) as i64);
        let x = e.b.ins().iadd(x, img);
        let ih0 = e.b.ins().iadd(t0, kh0);
        let x_row = e.addr(x, ih0, (g.w * g.c_in * 4) as i64);
        let w = e.buffer(self.l.b.w);
        let w_row = match self.s.depth_multiplier {
            None => w,
            Some(_) => e.addr(w, kh0, self.w_row_bytes()),
        };
        let rows = Rows {
            x_row,
            w_row,
            kh0,
            kh_n,
        };

        let regular = self.s.depth_multiplier.is_none();
        let runs = channel_runs(g.c_out, regular);
        for run in runs {
            // Padding columns of 8-channel groups go four groups at a time (below).
            let quads = if regular && run.group.width == V2.width {
                run.count / 4
            } else {
                0
            };
            let body = |e: &mut Emit<'_, '_>, co: Value| {
                self.emit_run_cols(e, epi, &rows, run.group, co, t, quads == 0, cols)
            };
            e.for_steps(run.start, run.count, run.group.width, body)?;
            if quads > 0 {
                e.for_steps(run.start, quads, V8.width, |e, co| {
                    self.emit_edge_cols(e, epi, &rows, V8, co, t, cols);
                    Ok(())
                })?;
                let rest = run.start + quads * V8.width;
                e.for_steps(rest, run.count % 4, V2.width, |e, co| {
                    self.emit_edge_cols(e, epi, &rows, V2, co, t, cols);
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// Columns `0..cols` of one channel group `co..co + group.width` of a conv row; the
    /// columns whose window crosses the padding only when `edges`.
    #[allow(clippy::too_many_arguments)]
    fn emit_run_cols(
        &self,
        e: &mut Emit<'_, '_>,
        epi: &Epilogue,
        rows: &Rows,
        group: Group,
        co: Value,
        t: &RowTarget,
        edges: bool,
        cols: usize,
    ) -> Result<(), JitError> {
        let g = self.s.geom;
        let (lo, hi) = self.l.interior;
        let (lo, hi) = (lo.min(cols), hi.min(cols));
        let full = (hi - lo) / group.pixels;
        if full > 0 {
            let start = e.iconst(lo as i64);
            let end = e.iconst((lo + full * group.pixels) as i64);
            e.for_range(start, end, group.pixels as i64, |e, ow| {
                self.emit_tile(e, epi, rows, group, co, t, ow, group.pixels, (0, g.k_w));
                Ok(())
            })?;
        }
        let rest = (hi - lo) % group.pixels;
        if rest > 0 {
            let ow = e.iconst((lo + full * group.pixels) as i64);
            self.emit_tile(e, epi, rows, group, co, t, ow, rest, (0, g.k_w));
        }
        if edges {
            self.emit_edge_cols(e, epi, rows, group, co, t, cols);
        }
        Ok(())
    }

    /// The columns below `cols` of channels `co..co + group.width` whose window crosses the
    /// padding, one by one with their own tap range.
    #[allow(clippy::too_many_arguments)]
    fn emit_edge_cols(
        &self,
        e: &mut Emit<'_, '_>,
        epi: &Epilogue,
        rows: &Rows,
        group: Group,
        co: Value,
        t: &RowTarget,
        cols: usize,
    ) {
        let g = self.s.geom;
        let (lo, hi) = self.l.interior;
        for col in (0..lo).chain(hi..g.out_w).filter(|&c| c < cols) {
            let start = col * g.stride_w;
            let kw0 = g.pad.left.saturating_sub(start).min(g.k_w);
            let kw1 = (g.pad.left + g.w).saturating_sub(start).min(g.k_w).max(kw0);
            let ow = e.iconst(col as i64);
            self.emit_tile(e, epi, rows, group, co, t, ow, 1, (kw0, kw1));
        }
    }

    /// A tile of `pixels` columns from `ow`, channels from `co`, kernel columns `kw0..kw1`.
    #[allow(clippy::too_many_arguments)]
    fn emit_tile(
        &self,
        e: &mut Emit<'_, '_>,
        epi: &Epilogue,
        rows: &Rows,
        group: Group,
        co: Value,
        t: &RowTarget,
        ow: Value,
        pixels: usize,
        (kw0, kw1): (usize, usize),
    ) {
        let g = self.s.geom;
        let mut tile = Tile::zeroed(e, group, pixels);
        if group.width == V8.width {
            // Four 8-channel panels, `8 · K` floats apart.
            let panel = (8 * g.k_h * g.k_w * g.c_in * 4) as i32;
            let offsets = (0..8).map(|l| (l / 2) * panel + (l % 2) * 16).collect();
            tile = tile.with_weight_offsets(offsets);
        }
        if kw1 > kw0 {
            // x at (ow·s - pad + kw0) of the first valid input row.
            let col = e.b.ins().imul_imm_s(ow, (g.stride_w * g.c_in * 4) as i64);
            let x = e.b.ins().iadd(rows.x_row, col);
            let x =
                e.b.ins()
                    .iadd_imm_s(x, ((kw0 as i64) - g.pad.left as i64) * (g.c_in as i64) * 4);
            // The group's panel (see `pack_weights`) at (kh0, kw0), or depthwise's kernel row.
            let gw = if group.width == V8.width {
                V2.width
            } else {
                group.width
            };
            let w_row_bytes = match self.s.depth_multiplier {
                None => (g.k_w * g.c_in * gw * 4) as i64,
                Some(_) => self.w_row_bytes(),
            };
            let w = match self.s.depth_multiplier {
                None => {
                    let panel = e.addr(rows.w_row, co, (g.k_h * g.k_w * g.c_in * 4) as i64);
                    let w = e.addr(panel, rows.kh0, w_row_bytes);
                    e.b.ins().iadd_imm_s(w, (kw0 * g.c_in * gw * 4) as i64)
                }
                Some(_) => rows.w_row,
            };
            let zero = e.iconst(0);
            let result = e.for_range(zero, rows.kh_n, 1, |e, kh| {
                let x = e.addr(x, kh, (g.w * g.c_in * 4) as i64);
                let w = e.addr(w, kh, w_row_bytes);
                match self.s.depth_multiplier {
                    None => tile.reduce(
                        e,
                        x,
                        (g.stride_w * g.c_in * 4) as i32,
                        w,
                        (gw * 4) as i32,
                        (kw1 - kw0) * g.c_in,
                    ),
                    Some(m) => self.depthwise_taps(e, &tile, x, w, co, m, (kw0, kw1)),
                }
                Ok(())
            });
            debug_assert!(result.is_ok());
        }
        let px = e.b.ins().imul_imm_s(ow, t.dst_px as i64);
        let dst = e.b.ins().iadd(t.dst, px);
        let res = t.res.map(|r| {
            let px = e.b.ins().imul_imm_s(ow, (g.c_out * 4) as i64);
            let r = e.b.ins().iadd(r, px);
            let co4 = e.b.ins().ishl_imm_s(co, 2);
            (e.b.ins().iadd(r, co4), (g.c_out * 4) as i32)
        });
        let co4 = e.b.ins().ishl_imm_s(co, 2);
        let dst = e.b.ins().iadd(dst, co4);
        epi.emit(e, &tile, co, dst, t.dst_px, res);
    }

    /// Depthwise taps `kw0..kw1` of one kernel row: `x` is at the tile's first pixel and tap
    /// `kw0`, channel 0; `w` at the kernel row, tap 0, channel 0.
    #[allow(clippy::too_many_arguments)]
    fn depthwise_taps(
        &self,
        e: &mut Emit<'_, '_>,
        tile: &Tile,
        x: Value,
        w: Value,
        co: Value,
        m: usize,
        (kw0, kw1): (usize, usize),
    ) {
        let g = self.s.geom;
        let lanes = tile.group.lanes;
        let ty = lanes[0].1;
        let co4 = e.b.ins().ishl_imm_s(co, 2);
        let w = e.b.ins().iadd(w, co4);
        // Byte offset in x (from channel 0) of the input channel of every output lane.
        let ci_ptr = |e: &mut Emit<'_, '_>, lane: i64| {
            let c = e.b.ins().iadd_imm_s(co, lane);
            let ci = e.b.ins().udiv_imm_u(c, m as i64);
            e.addr(x, ci, 4)
        };
        let x_px = (g.stride_w * g.c_in * 4) as i32;
        let x_lanes: Vec<Value> = if ty == F32X4 && !m.is_multiple_of(4) && m != 1 {
            (0..4).map(|l| ci_ptr(e, l)).collect()
        } else if ty == F32X4 {
            vec![ci_ptr(e, 0)]
        } else {
            (0..lanes.len() as i64).map(|l| ci_ptr(e, l)).collect()
        };
        for kw in kw0..kw1 {
            let tap = ((kw - kw0) * g.c_in * 4) as i32;
            let w_off = (kw * g.c_out * 4) as i32;
            let ws: Vec<Value> = lanes
                .iter()
                .map(|&(off, ty)| load(e, ty, w, w_off + off))
                .collect();
            for p in 0..tile.pixels {
                let at = p as i32 * x_px + tap;
                for (gi, &wg) in ws.iter().enumerate() {
                    let xv = if ty != F32X4 {
                        e.load_f32(x_lanes[gi], at)
                    } else if m == 1 {
                        load(e, F32X4, x_lanes[0], at + 16 * gi as i32)
                    } else if m.is_multiple_of(4) {
                        e.load_splat(x_lanes[0], at)
                    } else {
                        let s0 = e.load_f32(x_lanes[0], at);
                        let mut v = e.b.ins().scalar_to_vector(F32X4, s0);
                        for (l, &p) in x_lanes.iter().enumerate().skip(1) {
                            let s = e.load_f32(p, at);
                            v = e.b.ins().insertlane(v, s, l as u8);
                        }
                        v
                    };
                    let var = tile.acc[p * lanes.len() + gi];
                    let a = e.b.use_var(var);
                    let a = e.fma(xv, wg, a);
                    e.b.def_var(var, a);
                }
            }
        }
    }

    /// With a pool: item = pooled row; its conv rows go to the stack scratch, then are pooled.
    fn emit_pooled_rows(
        &self,
        e: &mut Emit<'_, '_>,
        epi: &Epilogue,
        pl: &PoolLayout,
    ) -> Result<(), JitError> {
        let g = self.s.geom;
        let p = pl.p;
        let slot = e.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            pl.bytes as u32,
            4,
        ));
        let fill_value = if p.max { f32::NEG_INFINITY } else { 0.0 };
        let ptr = e.ptr;
        let scratch = e.b.ins().stack_addr(ptr, slot, 0);
        fill(e, scratch, pl.bytes, fill_value)?;
        let slot_bytes = (pl.cols * pl.c_pad * 4) as i64;
        e.for_items(|e, item| {
            if let Some(d) = epi.dead {
                tile::reset_dead(e, d);
            }
            let n = e.b.ins().udiv_imm_u(item, p.out_h as i64);
            let ph = e.b.ins().imul_imm_s(n, p.out_h as i64);
            let ph = e.b.ins().isub(item, ph);
            let r0 = e.b.ins().imul_imm_s(ph, p.stride_h as i64);
            let r0 = e.b.ins().iadd_imm_s(r0, -(p.pad.top as i64));
            if pl.joint {
                self.emit_joint_rows(e, epi, pl, slot, n, r0);
            } else {
                let zero = e.iconst(0);
                let k_h = e.iconst(p.k_h as i64);
                e.for_range(zero, k_h, 1, |e, i| {
                    let r = e.b.ins().iadd(r0, i);
                    let ge0 = e.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, r, 0);
                    let lt =
                        e.b.ins()
                            .icmp_imm_s(IntCC::SignedLessThan, r, g.out_h as i64);
                    let valid = e.b.ins().band(ge0, lt);
                    // The scratch row: the conv row, or the pool's neutral value when the
                    // row is outside the conv output.
                    let ptr = e.ptr;
                    let scratch = e.b.ins().stack_addr(ptr, slot, 0);
                    let row = e.addr(scratch, i, slot_bytes);
                    let dst =
                        e.b.ins()
                            .iadd_imm_s(row, (p.pad.left * pl.c_pad * 4) as i64);
                    e.if_else(
                        valid,
                        |e| {
                            let res = self.l.b.residual.map(|b| {
                                let base = e.buffer(b);
                                let img_row = e.b.ins().imul_imm_s(n, g.out_h as i64);
                                let img_row = e.b.ins().iadd(img_row, r);
                                e.addr(base, img_row, self.row_bytes())
                            });
                            let target = RowTarget {
                                dst,
                                dst_px: (pl.c_pad * 4) as i32,
                                res,
                            };
                            self.emit_conv_row(e, epi, n, r, &target, pl.used)
                        },
                        |e| fill(e, dst, g.out_w * pl.c_pad * 4, fill_value),
                    )
                })?;
            }
            self.emit_pool_row(e, pl, slot, item, r0)?;
            if let (Some(d), Some(b)) = (epi.dead, self.l.b.dead) {
                let b = e.buffer(b);
                let b = e.addr(b, item, 4);
                tile::store_dead(e, d, b);
            }
            Ok(())
        })
    }

    /// The conv rows `r0..r0 + pool.k_h` of a pooled row (all inside the output: a valid
    /// convolution and an unpadded pool), columns `0..pl.used`, as one list of pixels cut
    /// into register tiles, into the scratch. Row by row, MNIST's second conv (11 columns of
    /// which a 2×2 pool uses 10) takes 4 + 4 + 3 pixels per row, six tiles, where the two
    /// rows' 20 pixels make five: 5% faster (paired single-thread runs), not the sixth a
    /// tile count promises, as a 3-pixel tile costs about three quarters of a 4-pixel one.
    /// A pixel's input and scratch offsets are constants (every pixel uses every kernel
    /// row), so a tile may span both rows.
    fn emit_joint_rows(
        &self,
        e: &mut Emit<'_, '_>,
        epi: &Epilogue,
        pl: &PoolLayout,
        slot: StackSlot,
        n: Value,
        r0: Value,
    ) {
        let g = self.s.geom;
        let p = pl.p;
        let k = g.k_h * g.k_w * g.c_in;
        let x_row_bytes = (g.w * g.c_in * 4) as i64;
        let x = e.buffer(self.l.b.x);
        let x = e.addr(x, n, (g.h * g.w * g.c_in * 4) as i64);
        let ih0 = e.b.ins().imul_imm_s(r0, g.stride_h as i64);
        let x = e.addr(x, ih0, x_row_bytes);
        let ptr = e.ptr;
        let scratch = e.b.ins().stack_addr(ptr, slot, 0);
        let slot_row = (pl.cols * pl.c_pad * 4) as i32;
        let pixels: Vec<(i32, i32)> = (0..p.k_h)
            .flat_map(|i| (0..pl.used).map(move |c| (i, c)))
            .map(|(i, c)| {
                let x_off = ((i * g.stride_h * g.w + c * g.stride_w) * g.c_in * 4) as i32;
                (x_off, i as i32 * slot_row + (c * pl.c_pad * 4) as i32)
            })
            .collect();
        for run in channel_runs(g.c_out, true) {
            let group = run.group;
            let body = |e: &mut Emit<'_, '_>, co: Value| {
                let w = e.buffer(self.l.b.w);
                let w = e.addr(w, co, (k * 4) as i64);
                let co4 = e.b.ins().ishl_imm_s(co, 2);
                let dst = e.b.ins().iadd(scratch, co4);
                let w_row_bytes = (g.k_w * g.c_in * group.width * 4) as i64;
                for chunk in pixels.chunks(group.pixels) {
                    let (xs, ds) = chunk.iter().copied().unzip();
                    let tile = Tile::zeroed(e, group, chunk.len()).with_pixel_offsets(xs, ds);
                    let (zero, k_h) = (e.iconst(0), e.iconst(g.k_h as i64));
                    let reduced = e.for_range(zero, k_h, 1, |e, kh| {
                        let x = e.addr(x, kh, x_row_bytes);
                        let w = e.addr(w, kh, w_row_bytes);
                        tile.reduce(e, x, 0, w, (group.width * 4) as i32, g.k_w * g.c_in);
                        Ok(())
                    });
                    debug_assert!(reduced.is_ok());
                    epi.emit(e, &tile, co, dst, 0, None);
                }
                Ok(())
            };
            let looped = e.for_steps(run.start, run.count, group.width, body);
            debug_assert!(looped.is_ok());
        }
    }

    /// Pools the scratch rows of `item` (pooled row whose window starts at conv row `r0`).
    fn emit_pool_row(
        &self,
        e: &mut Emit<'_, '_>,
        pl: &PoolLayout,
        slot: StackSlot,
        item: Value,
        r0: Value,
    ) -> Result<(), JitError> {
        let g = self.s.geom;
        let pool = super::pool::Window {
            max: pl.p.max,
            argmax: self.l.b.argmax.is_some(),
            k_h: pl.p.k_h,
            k_w: pl.p.k_w,
            row_stride: (pl.cols * pl.c_pad * 4) as i32,
            col_stride: (pl.c_pad * 4) as i32,
            c: g.c_out,
            idx_row: g.out_w * g.c_out,
            idx_col: g.c_out,
        };
        let p = pl.p;
        let y_row = (p.out_w * g.c_out * 4) as i64;
        let y = e.buffer(self.l.b.y);
        let y = e.addr(y, item, y_row);
        let arg = self.l.b.argmax.map(|a| {
            let a = e.buffer(a);
            e.addr(a, item, y_row)
        });
        // Rows of the window inside the conv output (for the average's count).
        let r_end = e.b.ins().iadd_imm_s(r0, p.k_h as i64);
        let oh = e.iconst(g.out_h as i64);
        let r_end = e.b.ins().smin(r_end, oh);
        let zero = e.iconst(0);
        let r_start = e.b.ins().smax(r0, zero);
        let rows_in = e.b.ins().isub(r_end, r_start);
        let start = e.iconst(0);
        let end = e.iconst(p.out_w as i64);
        e.for_range(start, end, 1, |e, pw| {
            let cb = e.b.ins().imul_imm_s(pw, p.stride_w as i64);
            let ptr = e.ptr;
            let scratch = e.b.ins().stack_addr(ptr, slot, 0);
            let src = e.addr(scratch, cb, (pl.c_pad * 4) as i64);
            let c0 = e.b.ins().iadd_imm_s(cb, -(p.pad.left as i64));
            let count = if p.max {
                None
            } else {
                let c_end = e.b.ins().iadd_imm_s(c0, p.k_w as i64);
                let ow = e.iconst(g.out_w as i64);
                let c_end = e.b.ins().smin(c_end, ow);
                let zero = e.iconst(0);
                let c_start = e.b.ins().smax(c0, zero);
                let cols_in = e.b.ins().isub(c_end, c_start);
                Some(e.b.ins().imul(rows_in, cols_in))
            };
            // Flat pre-pool index of tap (0, 0), channel 0: (r0·out_w + c0)·c_out.
            let idx = arg.map(|_| {
                let base = e.b.ins().imul_imm_s(r0, g.out_w as i64);
                let base = e.b.ins().iadd(base, c0);
                let base = e.b.ins().imul_imm_s(base, g.c_out as i64);
                e.b.ins().ireduce(types::I32, base)
            });
            let dst = e.addr(y, pw, (g.c_out * 4) as i64);
            let arg_dst = arg.map(|a| e.addr(a, pw, (g.c_out * 4) as i64));
            pool.emit_pixel(e, src, idx, count, dst, arg_dst)
        })
    }
}

/// Pointers and the kernel-row count of one conv row.
struct Rows {
    /// Input at the first valid kernel row, column 0.
    x_row: Value,
    /// Depthwise: the kernel at the first valid kernel row; regular: the packed panels.
    w_row: Value,
    /// The first valid kernel row.
    kh0: Value,
    kh_n: Value,
}

/// Stores `value` in every `f32` of `bytes` (a multiple of 16) from `p`.
pub(crate) fn fill(
    e: &mut Emit<'_, '_>,
    p: Value,
    bytes: usize,
    value: f32,
) -> Result<(), JitError> {
    let v = e.splat(value);
    let end = e.b.ins().iadd_imm_s(p, bytes as i64);
    e.for_range(p, end, 16, |e, at| {
        e.store(v, at, 0);
        Ok(())
    })
}
