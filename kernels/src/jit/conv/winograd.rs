//! Forward 3×3 stride-1 convolutions by Winograd's minimal filtering, F(2×2, 3×3) (Lavin &
//! Gray, "Fast Algorithms for Convolutional Neural Networks", 2015), with the same fused
//! epilogue as the direct kernel (bias, folded batch-norm, activation, a 2×2 pool, dead
//! counts).
//!
//! # Why
//! A direct 3×3 convolution multiplies 36 times per input channel for a 2×2 block of outputs;
//! F(2×2, 3×3) multiplies 16 times. On a machine whose JIT code can only use 128-bit vectors
//! the FMA pipes are the limit (see `tile.rs`), so the multiplies saved are time saved. The
//! transforms add work proportional to the channels, not their product, and are a few per
//! cent of a layer of 32 channels or more.
//!
//! # The algorithm
//! The output is cut into 2×2 tiles; tile `(r, c)` reads the 4×4 input patch at
//! `(2r - pad.top, 2c - pad.left)` (zero outside the input). For every input channel the
//! patch `d` becomes `V = Bᵀ d B`, every kernel slice `g` (per input and output channel)
//! becomes `U = G g Gᵀ` (done once per call by [`transform_weights`], outside the kernel),
//! and for each of the 16 positions `ξ` of the 4×4 transformed tile,
//! `M[ξ] = V[ξ] · U[ξ]` is a matrix product `[tiles × c_in] · [c_in × c_out]`. The output
//! tile is `Y = Aᵀ M A` (2×2), then the epilogue. With
//!
//! ```text
//! Bᵀ = | 1  0 -1  0 |    G = | 1    0    0  |    Aᵀ = | 1  1  1  0 |
//!      | 0  1  1  0 |        | ½    ½    ½  |         | 0  1 -1 -1 |
//!      | 0 -1  1  0 |        | ½   -½    ½  |
//!      | 0  1  0 -1 |        | 0    0    1  |
//! ```
//!
//! # Code shape
//! A work item is a block of tiles: whole tile rows (a 2×2 pool fused: pooled rows), as many
//! as fit a budget and divide the sample's rows — every tile of a small sample (MNIST's
//! 11×11 maps: 25 tiles, where a row would have 5), half of a VGG16 28×28 map of 512
//! channels — or one row cut into column chunks when a row is too wide. The item's transformed inputs
//! `V` (`[16][tiles][c_in]`) and products `M` (`[16][tiles][c_out]`) live in a scratch of
//! the call's own ([`crate::jit::Bound::with_call_scratch`]), too large for the stack. The
//! 16 products run on the register tile of `tile.rs`, exactly as a 1×1 convolution over the
//! item's tiles: `U[ξ]` is packed in panels like the direct kernel's weights
//! ([`super::pack_weights`]). The transforms are vectorised across 4 channels. Input rows
//! outside the image are read from a zero row in the scratch; columns outside it are known
//! when the code is emitted (a chunk's columns are constants), so edge tiles are emitted one
//! by one and interior tiles run in a loop.
//!
//! A fused pool is 2×2 with stride 2 and no padding, so its windows are the output tiles: a
//! pooled row is a tile row, and tiles no window covers (the last row or column of an odd
//! output) are not computed. Winograd's rounding differs from the direct sum's by a few ulps
//! (the transforms add and subtract inputs before multiplying), within what the tests allow
//! the direct kernel against the f64 reference.

pub mod weight_grad;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::Variable;

use super::tile::{Tile, activate, channel_runs, constant, zero};
use super::{Buffers, ConvForwardKernel, ConvForwardSpec, Emit, Jit, JitError, fill};
use crate::geom::{Conv2dGeom, Padding2d};
use crate::jit::builder::F32X4;

/// The fewest input and output channels for which Winograd is used: below that the
/// transforms cost more than the multiplies they save (MNIST's first conv has 1 input).
const MIN_CHANNELS: usize = 16;

/// The most bytes of one transformed position's inputs, `V[ξ]`, an item may hold: the
/// products for `ξ` re-read them once per 8 output channels, so they should stay in L1/L2.
const ITEM_V_BYTES: usize = 32 * 1024;

/// From `c_in · c_out` this large (256 × 256), an item may hold [`WIDE_ITEM_V_BYTES`]: its
/// transformed kernel (16 MiB at 512 × 512) streams from memory once per item, so more
/// tiles per item pay for it. VGG16's 512-channel convolutions on 14 × 14 and 28 × 28 maps
/// ran 1.62 and 1.35 times faster with whole samples and half samples as items than with
/// rows of 7 and 14 tiles; 128-channel maps ran slower with larger items (0.93–0.96).
const WIDE_CHANNELS: usize = 256 * 256;
const WIDE_ITEM_V_BYTES: usize = 256 * 1024;

/// Whether `s` is computed by this module: a regular 3×3 stride-1 convolution with at least
/// 16 channels in and out, padding of at most 2 on each side, no residual, and no pool or a
/// 2×2 stride-2 unpadded one — and which Winograd computes with fewer multiplies than the
/// direct kernel (16 per register-tile slot and channel pair, plus a quarter for the
/// transforms, against the direct kernel's taps that fall inside the input).
pub fn eligible(s: &ConvForwardSpec) -> bool {
    supported(s) && cheaper_than_direct(s)
}

/// Whether the multiply-adds per channel pair of the Winograd kernel, with a quarter added
/// for its transforms, are fewer than the direct kernel's: 16 per tile, a tile group's
/// remainder costing a whole group (its few accumulators wait on the FMA latency), against
/// 9 per output less the taps that fall in the padding, which the direct kernel skips. Small
/// maps with wide padding lose: the input gradient of MNIST's third conv (3×3 → 5×5,
/// padded by 2) has 81 taps and would take 12 tile slots, 192 products, and measured 0.63
/// times the direct kernel's speed; its second conv's (11×11 → 13×13) takes 832 against 1,089
/// and measured 1.23 times faster.
fn cheaper_than_direct(s: &ConvForwardSpec) -> bool {
    cheaper(s, &Layout::new(s))
}

/// [`cheaper_than_direct`] with the tiles of layout `l`.
fn cheaper(s: &ConvForwardSpec, l: &Layout) -> bool {
    #[cfg(test)]
    if ALWAYS.get() {
        return true;
    }
    let g = &s.geom;
    let region = match s.pool {
        Some(p) => (2 * p.out_h, 2 * p.out_w),
        None => (g.out_h, g.out_w),
    };
    slots(l) * 16 * 5 <= direct_taps(s, region) * 4
}

/// Register-tile slots the products of layout `l` take per sample: an item's tiles rounded
/// up to whole tile groups.
fn slots(l: &Layout) -> usize {
    let per = super::tile::V2.pixels;
    l.chunks
        .iter()
        .map(|&(_, c)| (l.rows_per_item * c).div_ceil(per) * per)
        .sum::<usize>()
        * (l.items_per_sample / l.chunks.len())
}

#[cfg(test)]
thread_local! {
    /// Tests of the Winograd kernels on shapes the direct kernel computes faster set this.
    pub(crate) static ALWAYS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Multiply-adds per channel pair of a direct 3×3 convolution computing output rows
/// `0..rows` and columns `0..cols`: the taps that fall inside the input.
fn direct_taps(s: &ConvForwardSpec, (rows, cols): (usize, usize)) -> usize {
    let g = &s.geom;
    let taps = |out: usize, pad: usize, size: usize| -> usize {
        (0..out)
            .map(|o| {
                (0..3)
                    .filter(|&k| (o + k).checked_sub(pad).is_some_and(|i| i < size))
                    .count()
            })
            .sum()
    };
    taps(rows, g.pad.top, g.h) * taps(cols, g.pad.left, g.w)
}

fn supported(s: &ConvForwardSpec) -> bool {
    let g = &s.geom;
    let pad = g.pad;
    let pool_ok = s.pool.is_none_or(|p| {
        (p.k_h, p.k_w, p.stride_h, p.stride_w) == (2, 2, 2, 2) && p.pad == Padding2d::default()
    });
    s.winograd
        && s.depth_multiplier.is_none()
        && !s.residual
        && (g.k_h, g.k_w, g.stride_h, g.stride_w) == (3, 3, 1, 1)
        && [pad.top, pad.bottom, pad.left, pad.right]
            .iter()
            .all(|&p| p <= 2)
        && g.c_in >= MIN_CHANNELS
        && g.c_out >= MIN_CHANNELS
        && g.out_h >= 2
        && g.out_w >= 2
        && pool_ok
}

/// Length of [`transform_weights`]' output: 16 matrices of `c_in × c_out`.
pub fn weights_len(g: &Conv2dGeom) -> usize {
    16 * g.c_in * g.c_out
}

/// `U = G g Gᵀ` of an HWIO 3×3 kernel `w`, as 16 matrices `[c_in][c_out]` (one per position
/// of the 4×4 transformed tile, row-major), each packed in channel panels as
/// [`super::pack_weights`] packs a 1×1 kernel.
///
/// # Panics
/// When `w` or `out` is too short, or the kernel is not 3×3.
pub fn transform_weights(g: &Conv2dGeom, w: &[f32], out: &mut [f32]) {
    assert_eq!(
        (g.k_h, g.k_w),
        (3, 3),
        "Winograd F(2×2, 3×3) needs a 3×3 kernel"
    );
    let m = g.c_in * g.c_out;
    // Plane by plane (a plane is one tap's or one ξ's `[c_in][c_out]`): every loop below
    // reads and writes a few planes, where a loop over channel pairs writing all 16 would
    // keep 16 streams a multiple of 4 KiB apart, all in one L1 set.
    let tap = |kh: usize, kw: usize| &w[(kh * 3 + kw) * m..][..m];
    // G g: 4 rows × 3 kernel columns.
    let mut gg = vec![0.0f32; 12 * m];
    for kw in 0..3 {
        for row in 0..4 {
            let out = &mut gg[(row * 3 + kw) * m..][..m];
            g_row(row, tap(0, kw), tap(1, kw), tap(2, kw), out);
        }
    }
    // (G g) Gᵀ: each row's 3 columns to 4, then packed.
    let mut plane = vec![0.0f32; m];
    for r in 0..4 {
        let col = |kw: usize| &gg[(r * 3 + kw) * m..][..m];
        for k in 0..4 {
            g_row(k, col(0), col(1), col(2), &mut plane);
            super::pack_panels(g.c_in, g.c_out, &plane, &mut out[(r * 4 + k) * m..][..m]);
        }
    }
}

/// Row `row` of `G` applied to three planes: `a`, `½(a + b + c)`, `½(a - b + c)` or `c`.
fn g_row(row: usize, a: &[f32], b: &[f32], c: &[f32], out: &mut [f32]) {
    let it = out.iter_mut().zip(a).zip(b).zip(c);
    match row {
        0 => out.copy_from_slice(a),
        1 => it.for_each(|(((o, a), b), c)| *o = 0.5 * (a + b + c)),
        2 => it.for_each(|(((o, a), b), c)| *o = 0.5 * (a - b + c)),
        _ => out.copy_from_slice(c),
    }
}

/// Buffer indices and derived sizes of a Winograd spec.
struct Layout {
    b: Buffers,
    /// The `scratch` buffer's index (last).
    scratch: usize,
    /// Channels rounded up to a multiple of 4 (the rows of `V` and `M`).
    ci4: usize,
    co4: usize,
    /// Tile rows per item, a divisor of the sample's (all of them: an item is a sample).
    rows_per_item: usize,
    tile_rows: usize,
    /// Output rows after the tiles' and columns after theirs, known to be zero and filled
    /// ([`Layout::active`]).
    zero_rows: usize,
    zero_cols: usize,
    /// Column chunks of a tile row, `(first tile column, tile columns)`.
    chunks: Vec<(usize, usize)>,
    /// Most tiles an item holds.
    max_tiles: usize,
    items_per_sample: usize,
    out_shape: (usize, usize, usize),
    /// f32s of scratch per call: `V`, `M`, then the zero row.
    scratch_len: usize,
    /// Offset (f32s) of the zero row in the scratch.
    zero_at: usize,
    computed_per_sample: usize,
}

impl Layout {
    fn new(s: &ConvForwardSpec) -> Layout {
        Layout::active(s, (s.geom.out_h, s.geom.out_w))
    }

    /// The layout of an unpooled spec whose outputs beyond rows `active.0` and columns
    /// `active.1` are known to be zero: tiles cover the active region, the rest is filled.
    fn active(s: &ConvForwardSpec, active: (usize, usize)) -> Layout {
        let g = &s.geom;
        // The Winograd kernel takes no residual (`supported`).
        let b = Buffers::new(s, true);
        let scratch = b.names.len() - 1;
        let (ci4, co4) = (g.c_in.div_ceil(4) * 4, g.c_out.div_ceil(4) * 4);
        let (tile_rows, tile_cols, out_shape) = match s.pool {
            Some(p) => (p.out_h, p.out_w, (p.out_h, p.out_w, g.c_out)),
            None => (
                active.0.clamp(1, g.out_h).div_ceil(2),
                active.1.clamp(1, g.out_w).div_ceil(2),
                (g.out_h, g.out_w, g.c_out),
            ),
        };
        let v_bytes = |tiles: usize| tiles * ci4 * 4;
        let item_v = if g.c_in * g.c_out >= WIDE_CHANNELS {
            WIDE_ITEM_V_BYTES
        } else {
            ITEM_V_BYTES
        };
        let (rows_per_item, chunks) = if v_bytes(tile_cols) <= item_v {
            // Whole tile rows: the most that fit and divide the sample's rows evenly.
            let rows = (1..=tile_rows)
                .filter(|r| tile_rows.is_multiple_of(*r) && v_bytes(r * tile_cols) <= item_v)
                .max()
                .unwrap_or(1);
            (rows, vec![(0, tile_cols)])
        } else {
            let n = v_bytes(tile_cols).div_ceil(item_v).min(tile_cols);
            let per = tile_cols.div_ceil(n);
            let chunks = (0..tile_cols)
                .step_by(per)
                .map(|c0| (c0, per.min(tile_cols - c0)))
                .collect();
            (1, chunks)
        };
        let max_tiles = rows_per_item * chunks.iter().map(|c| c.1).max().unwrap_or(0);
        let items_per_sample = tile_rows.div_ceil(rows_per_item) * chunks.len();
        let zero_at = 16 * max_tiles * (ci4 + co4);
        let zero_len = (g.w * g.c_in).div_ceil(4) * 4 + 4;
        let computed_per_sample = match s.pool {
            Some(p) => 4 * p.out_h * p.out_w * g.c_out,
            None => g.out_h * g.out_w * g.c_out,
        };
        let zero_rows = if s.pool.is_none() {
            g.out_h.saturating_sub(2 * tile_rows)
        } else {
            0
        };
        let zero_cols = if s.pool.is_none() {
            g.out_w.saturating_sub(2 * tile_cols)
        } else {
            0
        };
        Layout {
            tile_rows,
            zero_rows,
            zero_cols,
            b,
            scratch,
            ci4,
            co4,
            rows_per_item,
            chunks,
            max_tiles,
            items_per_sample,
            out_shape,
            scratch_len: zero_at + zero_len,
            zero_at,
            computed_per_sample,
        }
    }
}

/// Emits `spec` (which [`eligible`] accepts) as kernel `name`.
///
/// # Buffers
/// As [`super::emit_conv_forward`] documents, with `w` transformed by
/// [`transform_weights`] and a last buffer `scratch` of
/// [`ConvForwardKernel::call_scratch`] f32s that every call needs to itself.
///
/// # Work items
/// `items_per_sample` blocks of output tiles per sample: a tile row (or a column chunk of
/// one) in row-major order, or the whole sample (`items_per_sample == 1`). `dead[i]` counts
/// the exact zeros among the activations item `i` computed.
pub(super) fn emit(
    jit: &mut Jit,
    name: &str,
    spec: &ConvForwardSpec,
) -> Result<ConvForwardKernel, JitError> {
    emit_layout(jit, name, spec, Layout::new(spec))
}

fn emit_layout(
    jit: &mut Jit,
    name: &str,
    spec: &ConvForwardSpec,
    l: Layout,
) -> Result<ConvForwardKernel, JitError> {
    jit.define(name, |e| Emitter { s: spec, l: &l }.emit(e))?;
    Ok(ConvForwardKernel {
        buffers: l.b.names.clone(),
        items_per_sample: l.items_per_sample,
        out_shape: l.out_shape,
        scratch_bytes: 0,
        computed_per_sample: l.computed_per_sample,
        weights: super::WeightLayout::Winograd,
        call_scratch: l.scratch_len,
    })
}

struct Emitter<'a> {
    s: &'a ConvForwardSpec,
    l: &'a Layout,
}

/// The pointers of one item.
struct Item {
    /// Sample `n`'s input.
    x: Value,
    /// The item's `V`, `M` and the zero row.
    v: Value,
    m: Value,
    zero_row: Value,
    n: Value,
    /// The item's first tile row.
    tr0: Value,
    dead: Option<Variable>,
}

impl Emitter<'_> {
    fn emit(&self, e: &mut Emit<'_, '_>) -> Result<(), JitError> {
        let l = self.l;
        let g = self.s.geom;
        let scratch = e.buffer(l.scratch);
        let zero_row = e.b.ins().iadd_imm_s(scratch, (l.zero_at * 4) as i64);
        fill(e, zero_row, (l.scratch_len - l.zero_at) * 4, 0.0)?;
        let dead = l.b.dead.map(|_| {
            let z = e.b.ins().iconst(types::I32, 0);
            let z = e.b.ins().splat(types::I32X4, z);
            e.var(types::I32X4, z)
        });
        e.for_items(|e, item| {
            if let Some(d) = dead {
                let z = e.b.ins().iconst(types::I32, 0);
                let z = e.b.ins().splat(types::I32X4, z);
                e.b.def_var(d, z);
            }
            let ips = l.items_per_sample as i64;
            let n = e.b.ins().udiv_imm_u(item, ips);
            let rest = e.b.ins().imul_imm_s(n, ips);
            let rest = e.b.ins().isub(item, rest);
            let x = e.buffer(l.b.x);
            let x = e.addr(x, n, (g.h * g.w * g.c_in * 4) as i64);
            let scratch = e.buffer(l.scratch);
            let m =
                e.b.ins()
                    .iadd_imm_s(scratch, (16 * l.max_tiles * l.ci4 * 4) as i64);
            let zero_row = e.b.ins().iadd_imm_s(scratch, (l.zero_at * 4) as i64);
            let nc = l.chunks.len() as i64;
            let block = e.b.ins().udiv_imm_u(rest, nc);
            let chunk = {
                let t = e.b.ins().imul_imm_s(block, nc);
                e.b.ins().isub(rest, t)
            };
            let tr0 = e.b.ins().imul_imm_s(block, l.rows_per_item as i64);
            let it = Item {
                x,
                v: scratch,
                m,
                zero_row,
                n,
                tr0,
                dead,
            };
            if l.chunks.len() == 1 {
                self.emit_block(e, &it, l.chunks[0]);
            } else {
                for (k, &c) in l.chunks.iter().enumerate() {
                    let is = e.b.ins().icmp_imm_s(IntCC::Equal, chunk, k as i64);
                    e.if_then(is, |e| {
                        self.emit_block(e, &it, c);
                        Ok(())
                    })?;
                }
            }
            if l.zero_rows + l.zero_cols > 0 {
                let last_chunk =
                    e.b.ins()
                        .icmp_imm_s(IntCC::Equal, chunk, l.chunks.len() as i64 - 1);
                e.if_then(last_chunk, |e| self.fill_inactive(e, &it))?;
            }
            if let (Some(d), Some(buf)) = (dead, l.b.dead) {
                let v = e.b.use_var(d);
                let mut sum = e.b.ins().extractlane(v, 0);
                for lane in 1..4u8 {
                    let s = e.b.ins().extractlane(v, lane);
                    sum = e.b.ins().iadd(sum, s);
                }
                let b = e.buffer(buf);
                let at = e.addr(b, item, 4);
                e.store(sum, at, 0);
            }
            Ok(())
        })
    }

    /// Zeroes the outputs beyond the tiles ([`Layout::active`]) that item `it` (its last
    /// chunk) answers for: the columns after the tiles of its rows, and, when it holds the
    /// last tile row, the rows after the tiles.
    fn fill_inactive(&self, e: &mut Emit<'_, '_>, it: &Item) -> Result<(), JitError> {
        let g = self.s.geom;
        let l = self.l;
        let px = (g.c_out * 4) as i64;
        let row_bytes = g.out_w as i64 * px;
        let y = e.buffer(l.b.y);
        let img = e.addr(y, it.n, g.out_h as i64 * row_bytes);
        let rows = 2 * l.rows_per_item;
        if l.zero_cols > 0 {
            let first = e.b.ins().imul_imm_s(it.tr0, 2);
            let (zero, end) = (e.iconst(0), e.iconst(rows as i64));
            e.for_range(zero, end, 1, |e, r| {
                let row = e.b.ins().iadd(first, r);
                let inside =
                    e.b.ins()
                        .icmp_imm_s(IntCC::SignedLessThan, row, g.out_h as i64);
                e.if_then(inside, |e| {
                    let at = e.addr(img, row, row_bytes);
                    let at =
                        e.b.ins()
                            .iadd_imm_s(at, (g.out_w - l.zero_cols) as i64 * px);
                    fill_bytes(e, at, l.zero_cols * g.c_out * 4);
                    Ok(())
                })
            })?;
        }
        if l.zero_rows > 0 {
            let last = e.b.ins().iadd_imm_s(it.tr0, l.rows_per_item as i64);
            let holds_last = e.b.ins().icmp_imm_s(IntCC::Equal, last, l.tile_rows as i64);
            e.if_then(holds_last, |e| {
                let at =
                    e.b.ins()
                        .iadd_imm_s(img, (g.out_h - l.zero_rows) as i64 * row_bytes);
                fill_bytes(e, at, l.zero_rows * g.out_w * g.c_out * 4);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// One item: tile rows `tr0..tr0 + rows_per_item`, tile columns `c0..c0 + cols`.
    fn emit_block(&self, e: &mut Emit<'_, '_>, it: &Item, (c0, cols): (usize, usize)) {
        let l = self.l;
        let tiles = l.rows_per_item * cols;
        self.for_rows(e, it, |e, i, tr| {
            let v_row = e.addr(it.v, i, (cols * l.ci4 * 4) as i64);
            let xi_bytes = (tiles * l.ci4 * 4) as i32;
            self.input_row(e, (it.x, it.zero_row), v_row, xi_bytes, tr, c0, cols);
        });
        self.products(e, it, tiles);
        self.for_rows(e, it, |e, i, tr| {
            self.output_row(e, it, i, tr, c0, cols, tiles);
        });
    }

    /// `body(i, tr)` for the item's tile rows: `i` from 0, `tr` the row in the sample.
    fn for_rows(
        &self,
        e: &mut Emit<'_, '_>,
        it: &Item,
        mut body: impl FnMut(&mut Emit<'_, '_>, Value, Value),
    ) {
        if self.l.rows_per_item == 1 {
            let zero = e.iconst(0);
            body(e, zero, it.tr0);
            return;
        }
        let (zero, end) = (e.iconst(0), e.iconst(self.l.rows_per_item as i64));
        let looped = e.for_range(zero, end, 1, |e, i| {
            let tr = e.b.ins().iadd(it.tr0, i);
            body(e, i, tr);
            Ok(())
        });
        debug_assert!(looped.is_ok());
    }

    /// `V` of the tiles of tile row `tr` of sample `x`, columns `c0..c0 + cols`, stored from
    /// `v_row` (tile `j` at `j · ci4` floats, position `ξ` at `ξ · xi_bytes` bytes).
    #[allow(clippy::too_many_arguments)]
    fn input_row(
        &self,
        e: &mut Emit<'_, '_>,
        (x, zero_row): (Value, Value),
        v_row: Value,
        xi_bytes: i32,
        tr: Value,
        c0: usize,
        cols: usize,
    ) {
        let g = self.s.geom;
        let l = self.l;
        let row_bytes = (g.w * g.c_in * 4) as i64;
        // Input rows ih0..ih0 + 4, each the image's row or the zero row when outside.
        let ih0 = e.b.ins().imul_imm_s(tr, 2);
        let ih0 = e.b.ins().iadd_imm_s(ih0, -(g.pad.top as i64));
        let rows: [Value; 4] = std::array::from_fn(|k| {
            let ih = e.b.ins().iadd_imm_s(ih0, k as i64);
            let inside =
                e.b.ins()
                    .icmp_imm_u(IntCC::UnsignedLessThan, ih, g.h as i64);
            let p = e.addr(x, ih, row_bytes);
            e.b.ins().select(inside, p, zero_row)
        });
        // Tile column j reads input columns iw0..iw0 + 4, iw0 = 2(c0 + j) - pad.left.
        let iw0 = |j: usize| 2 * (c0 + j) as isize - g.pad.left as isize;
        let valid = |j: usize| -> [bool; 4] {
            std::array::from_fn(|k| (0..g.w as isize).contains(&(iw0(j) + k as isize)))
        };
        let interior: Vec<usize> = (0..cols).filter(|&j| valid(j) == [true; 4]).collect();
        let col_bytes = (g.c_in * 4) as i64;
        let tile_at = |e: &mut Emit<'_, '_>, j: Value, iw: Value| {
            let ptrs: [Value; 4] = std::array::from_fn(|k| e.addr(rows[k], iw, col_bytes));
            let v = e.addr(v_row, j, (l.ci4 * 4) as i64);
            (ptrs, v)
        };
        if let (Some(&lo), Some(&hi)) = (interior.first(), interior.last()) {
            let (start, end) = (e.iconst(lo as i64), e.iconst(hi as i64 + 1));
            let looped = e.for_range(start, end, 1, |e, j| {
                let iw = e.b.ins().imul_imm_s(j, 2);
                let iw = e.b.ins().iadd_imm_s(iw, 2 * c0 as i64 - g.pad.left as i64);
                let (ptrs, v) = tile_at(e, j, iw);
                self.input_tile(e, ptrs, [true; 4], v, xi_bytes);
                Ok(())
            });
            debug_assert!(looped.is_ok());
        }
        for j in (0..cols).filter(|j| !interior.contains(j)) {
            let (jv, iw) = (e.iconst(j as i64), e.iconst(iw0(j) as i64));
            let (ptrs, v) = tile_at(e, jv, iw);
            self.input_tile(e, ptrs, valid(j), v, xi_bytes);
        }
    }

    /// `V = Bᵀ d B` of one tile, every input channel: `rows[k]` points at the patch's row
    /// `k`, column 0, channel 0 (columns not `valid` are zero and never read); `v` at the
    /// tile's `V[0]`, `V[ξ]` `ξ · xi_bytes` bytes after it.
    fn input_tile(
        &self,
        e: &mut Emit<'_, '_>,
        rows: [Value; 4],
        valid: [bool; 4],
        v: Value,
        xi_bytes: i32,
    ) {
        let g = self.s.geom;
        let col = (g.c_in * 4) as i32;
        let step = |e: &mut Emit<'_, '_>, c: Value, lanes: usize| {
            let ptrs: [Value; 4] = std::array::from_fn(|k| e.b.ins().iadd(rows[k], c));
            let d: [[Value; 4]; 4] = std::array::from_fn(|k| {
                std::array::from_fn(|m| {
                    if valid[m] {
                        e.load_partial(ptrs[k], m as i32 * col, lanes)
                    } else {
                        e.splat(0.0)
                    }
                })
            });
            let out = e.b.ins().iadd(v, c);
            let t = bt(e, d);
            let tt: [[Value; 4]; 4] = std::array::from_fn(|m| [t[0][m], t[1][m], t[2][m], t[3][m]]);
            let vt = bt(e, tt);
            // vt[col][row]: V at ξ = 4·row + col.
            for (cc, vcol) in vt.iter().enumerate() {
                for (r, &val) in vcol.iter().enumerate() {
                    e.store(val, out, (4 * r + cc) as i32 * xi_bytes);
                }
            }
        };
        e.for_blocks(g.c_in, 4, 4, step);
    }

    /// `M[ξ] = V[ξ] · U[ξ]` for the 16 positions, over the item's `tiles` tiles.
    fn products(&self, e: &mut Emit<'_, '_>, it: &Item, tiles: usize) {
        let g = self.s.geom;
        let l = self.l;
        let (zero, end) = (e.iconst(0), e.iconst(16));
        let looped = e.for_range(zero, end, 1, |e, xi| {
            let v = e.addr(it.v, xi, (tiles * l.ci4 * 4) as i64);
            let m = e.addr(it.m, xi, (tiles * l.co4 * 4) as i64);
            let u = e.buffer(l.b.w);
            let u = e.addr(u, xi, (g.c_in * g.c_out * 4) as i64);
            for run in channel_runs(g.c_out, true) {
                let group = run.group;
                let gw = group.width;
                let body = |e: &mut Emit<'_, '_>, co: Value| {
                    let panel = e.addr(u, co, (g.c_in * 4) as i64);
                    let m_co = e.addr(m, co, 4);
                    let tile = |e: &mut Emit<'_, '_>, p: Value, pixels: usize| {
                        let x = e.addr(v, p, (l.ci4 * 4) as i64);
                        let t = Tile::zeroed(e, group, pixels);
                        t.reduce(e, x, (l.ci4 * 4) as i32, panel, (gw * 4) as i32, g.c_in);
                        let dst = e.addr(m_co, p, (l.co4 * 4) as i64);
                        t.store(e, dst, (l.co4 * 4) as i32);
                    };
                    e.for_blocks(tiles, group.pixels, 1, tile);
                    Ok(())
                };
                e.for_steps(run.start, run.count, gw, body)?;
            }
            Ok(())
        });
        debug_assert!(looped.is_ok());
    }

    /// `Y = Aᵀ M A` and the epilogue of the tiles of tile row `tr` (the item's `i`-th).
    #[allow(clippy::too_many_arguments)]
    fn output_row(
        &self,
        e: &mut Emit<'_, '_>,
        it: &Item,
        i: Value,
        tr: Value,
        c0: usize,
        cols: usize,
        tiles: usize,
    ) {
        let g = self.s.geom;
        let l = self.l;
        let m_row = e.addr(it.m, i, (cols * l.co4 * 4) as i64);
        // Unpooled, the last tile row of an odd output has one row.
        let odd_rows = self.s.pool.is_none() && g.out_h % 2 == 1;
        let row = |e: &mut Emit<'_, '_>, out_rows: usize| {
            let wide: Vec<usize> = (0..cols).filter(|&j| 2 * (c0 + j) + 1 < g.out_w).collect();
            let tile = |e: &mut Emit<'_, '_>, j: Value, out_cols: usize| {
                let m = e.addr(m_row, j, (l.co4 * 4) as i64);
                let tc = e.b.ins().iadd_imm_s(j, c0 as i64);
                self.output_tile(e, it, m, tr, tc, (out_rows, out_cols), tiles);
            };
            if let (Some(&lo), Some(&hi)) = (wide.first(), wide.last()) {
                let (s, end) = (e.iconst(lo as i64), e.iconst(hi as i64 + 1));
                let looped = e.for_range(s, end, 1, |e, j| {
                    tile(e, j, 2);
                    Ok(())
                });
                debug_assert!(looped.is_ok());
            }
            for j in (0..cols).filter(|j| !wide.contains(j)) {
                let jv = e.iconst(j as i64);
                tile(e, jv, 1);
            }
        };
        if odd_rows {
            let second = e.b.ins().imul_imm_s(tr, 2);
            let second = e.b.ins().iadd_imm_s(second, 1);
            let two =
                e.b.ins()
                    .icmp_imm_s(IntCC::SignedLessThan, second, g.out_h as i64);
            let r = e.if_else(
                two,
                |e| {
                    row(e, 2);
                    Ok(())
                },
                |e| {
                    row(e, 1);
                    Ok(())
                },
            );
            debug_assert!(r.is_ok());
        } else {
            row(e, 2);
        }
    }

    /// One tile's outputs, every channel: `m` at the tile's `M[0]`, channel 0; tile `(tr,
    /// tc)` of sample `it.n`, of which `out_rows × out_cols` outputs exist.
    #[allow(clippy::too_many_arguments)]
    fn output_tile(
        &self,
        e: &mut Emit<'_, '_>,
        it: &Item,
        m: Value,
        tr: Value,
        tc: Value,
        (out_rows, out_cols): (usize, usize),
        tiles: usize,
    ) {
        let g = self.s.geom;
        let l = self.l;
        let co = g.c_out;
        let xi_bytes = (tiles * l.co4 * 4) as i32;
        // Destination of channel 0: the pooled pixel, or the tile's top-left output.
        let (py, px) = match self.s.pool {
            Some(p) => (p.out_h, p.out_w),
            None => (g.out_h, g.out_w),
        };
        let (oy, ox) = match self.s.pool {
            Some(_) => (tr, tc),
            None => {
                let oy = e.b.ins().imul_imm_s(tr, 2);
                let ox = e.b.ins().imul_imm_s(tc, 2);
                (oy, ox)
            }
        };
        let pixel = e.b.ins().imul_imm_s(it.n, py as i64);
        let pixel = e.b.ins().iadd(pixel, oy);
        let pixel = e.b.ins().imul_imm_s(pixel, px as i64);
        let pixel = e.b.ins().iadd(pixel, ox);
        let y = e.buffer(l.b.y);
        let y = e.addr(y, pixel, (co * 4) as i64);
        let arg = l.b.argmax.map(|a| {
            let a = e.buffer(a);
            e.addr(a, pixel, (co * 4) as i64)
        });
        // Flat index, in the sample's pre-pool tensor, of the tile's top-left output.
        // Flat index, in the sample's pre-pool tensor, of the tile's top-left output, in
        // every lane plus the lane: channel 0's indices (once per tile, not per channel step).
        let idx0 = arg.map(|_| {
            let r = e.b.ins().imul_imm_s(tr, 2 * g.out_w as i64);
            let c = e.b.ins().imul_imm_s(tc, 2);
            let at = e.b.ins().iadd(r, c);
            let at = e.b.ins().imul_imm_s(at, co as i64);
            let at = e.b.ins().ireduce(types::I32, at);
            let base = e.b.ins().splat(types::I32X4, at);
            let iota = iota(e);
            e.b.ins().iadd(base, iota)
        });
        let step = |e: &mut Emit<'_, '_>, c: Value, lanes: usize| {
            let mp = e.b.ins().iadd(m, c);
            let mv: [Value; 16] = std::array::from_fn(|xi| e.load_f32x4(mp, xi as i32 * xi_bytes));
            // Aᵀ M: 2 rows of 4, then (Aᵀ M) A: 2 × 2.
            let s: [[Value; 4]; 2] = std::array::from_fn(|r| {
                std::array::from_fn(|j| {
                    let (a, b, c2, d) = (mv[j], mv[4 + j], mv[8 + j], mv[12 + j]);
                    if r == 0 {
                        let t = e.b.ins().fadd(a, b);
                        e.b.ins().fadd(t, c2)
                    } else {
                        let t = e.b.ins().fsub(b, c2);
                        e.b.ins().fsub(t, d)
                    }
                })
            });
            let mut out = [[None; 2]; 2];
            for (r, sr) in s.iter().enumerate().take(out_rows) {
                for (k, slot) in out[r].iter_mut().enumerate().take(out_cols) {
                    let v = if k == 0 {
                        let t = e.b.ins().fadd(sr[0], sr[1]);
                        e.b.ins().fadd(t, sr[2])
                    } else {
                        let t = e.b.ins().fsub(sr[1], sr[2]);
                        e.b.ins().fsub(t, sr[3])
                    };
                    *slot = Some(v);
                }
            }
            let per_channel = |e: &mut Emit<'_, '_>, buf: usize| {
                let b = e.buffer(buf);
                let b = e.b.ins().iadd(b, c);
                e.load_partial(b, 0, lanes)
            };
            let bias = l.b.bias.map(|b| per_channel(e, b));
            let bn =
                l.b.scale_shift
                    .map(|(s, t)| (per_channel(e, s), per_channel(e, t)));
            let lane_mask = (lanes < 4).then(|| lane_mask(e, lanes));
            let mut finished = Vec::new();
            for (r, row) in out.iter().enumerate() {
                for (k, v) in row.iter().enumerate() {
                    let Some(mut v) = *v else { continue };
                    if let Some(b) = bias {
                        v = e.b.ins().fadd(v, b);
                    }
                    if let Some((s, t)) = bn {
                        v = e.fma(v, s, t);
                    }
                    v = activate(e, self.s.activation, v);
                    if let Some(d) = it.dead {
                        let z = zero(e, F32X4);
                        let mut is0 = e.b.ins().fcmp(FloatCC::Equal, v, z);
                        if let Some(mask) = lane_mask {
                            is0 = e.b.ins().band(is0, mask);
                        }
                        let old = e.b.use_var(d);
                        let new = e.b.ins().isub(old, is0);
                        e.b.def_var(d, new);
                    }
                    finished.push((r, k, v));
                }
            }
            let y = e.b.ins().iadd(y, c);
            match self.s.pool {
                None => {
                    for (r, k, v) in finished {
                        let at = ((r * g.out_w + k) * co * 4) as i32;
                        e.store_partial(v, y, at, lanes);
                    }
                }
                Some(p) if p.max => {
                    let (_, _, mut best) = finished[0];
                    let idx = idx0.map(|i0| {
                        let ch = e.b.ins().ushr_imm_u(c, 2);
                        let ch = e.b.ins().ireduce(types::I32, ch);
                        let ch = e.b.ins().splat(types::I32X4, ch);
                        e.b.ins().iadd(i0, ch)
                    });
                    let mut win = idx;
                    for &(r, k, v) in &finished[1..] {
                        let gt = e.b.ins().fcmp(FloatCC::GreaterThan, v, best);
                        let mut little = MemFlagsData::new();
                        let _ = little.set_by_name("little");
                        let gtf = e.b.ins().bitcast(F32X4, little, gt);
                        best = e.b.ins().bitselect(gtf, v, best);
                        if let (Some(i), Some(w)) = (idx, win) {
                            let off =
                                e.b.ins()
                                    .iconst(types::I32, ((r * g.out_w + k) * co) as i64);
                            let off = e.b.ins().splat(types::I32X4, off);
                            let here = e.b.ins().iadd(i, off);
                            win = Some(e.b.ins().bitselect(gt, here, w));
                        }
                    }
                    e.store_partial(best, y, 0, lanes);
                    if let (Some(a), Some(w)) = (arg, win) {
                        let a = e.b.ins().iadd(a, c);
                        let wf = {
                            let mut little = MemFlagsData::new();
                            let _ = little.set_by_name("little");
                            e.b.ins().bitcast(F32X4, little, w)
                        };
                        e.store_partial(wf, a, 0, lanes);
                    }
                }
                Some(_) => {
                    let mut sum = zero(e, F32X4);
                    for &(_, _, v) in &finished {
                        sum = e.b.ins().fadd(sum, v);
                    }
                    let quarter = constant(e, F32X4, 0.25);
                    let mean = e.b.ins().fmul(sum, quarter);
                    e.store_partial(mean, y, 0, lanes);
                }
            }
        };
        e.for_blocks(co, 4, 4, step);
    }
}

/// Zeroes `bytes` (a multiple of 4) from `p`: vectors, then the last 1–3 floats.
fn fill_bytes(e: &mut Emit<'_, '_>, p: Value, bytes: usize) {
    let vectors = bytes / 16 * 16;
    if vectors > 0 {
        let filled = fill(e, p, vectors, 0.0);
        debug_assert!(filled.is_ok());
    }
    let z = e.f32const(0.0);
    for at in (vectors..bytes).step_by(4) {
        e.store(z, p, at as i32);
    }
}

/// `Bᵀ d` for 4 rows of 4 vectors: `[d0 - d2, d1 + d2, d2 - d1, d1 - d3]`, column by column.
fn bt(e: &mut Emit<'_, '_>, d: [[Value; 4]; 4]) -> [[Value; 4]; 4] {
    let mut out = d;
    for m in 0..4 {
        out[0][m] = e.b.ins().fsub(d[0][m], d[2][m]);
        out[1][m] = e.b.ins().fadd(d[1][m], d[2][m]);
        out[2][m] = e.b.ins().fsub(d[2][m], d[1][m]);
        out[3][m] = e.b.ins().fsub(d[1][m], d[3][m]);
    }
    out
}

/// An `i32x4` with the first `lanes` lanes all ones, the others zero.
fn lane_mask(e: &mut Emit<'_, '_>, lanes: usize) -> Value {
    let z = e.b.ins().iconst(types::I32, 0);
    let mut v = e.b.ins().splat(types::I32X4, z);
    let ones = e.b.ins().iconst(types::I32, -1);
    for lane in 0..lanes {
        v = e.b.ins().insertlane(v, ones, lane as u8);
    }
    v
}

/// The `i32x4` `[0, 1, 2, 3]`.
fn iota(e: &mut Emit<'_, '_>) -> Value {
    let z = e.b.ins().iconst(types::I32, 0);
    let mut v = e.b.ins().splat(types::I32X4, z);
    for lane in 1..4u8 {
        let k = e.b.ins().iconst(types::I32, i64::from(lane));
        v = e.b.ins().insertlane(v, k, lane);
    }
    v
}

/// The input gradient of the stride-1 3×3 convolution `g` as a forward convolution: over
/// `dz` (`[n, out_h, out_w, c_out]`) with the kernel turned by 180° and its channels swapped,
/// padded by `2 - pad` on each side, it gives `dx` (`[n, h, w, c_in]`). `None` when `g` is
/// not 3×3 stride 1 or a padding exceeds 2.
pub fn input_gradient_geom(g: &Conv2dGeom) -> Option<Conv2dGeom> {
    if (g.k_h, g.k_w, g.stride_h, g.stride_w) != (3, 3, 1, 1) {
        return None;
    }
    let flip = |p: usize| 2usize.checked_sub(p);
    let pad = Padding2d {
        top: flip(g.pad.top)?,
        bottom: flip(g.pad.bottom)?,
        left: flip(g.pad.left)?,
        right: flip(g.pad.right)?,
    };
    let dx = Conv2dGeom::new(
        g.n,
        (g.out_h, g.out_w, g.c_out),
        (3, 3),
        g.c_in,
        (1, 1),
        pad,
    )?;
    ((dx.out_h, dx.out_w) == (g.h, g.w)).then_some(dx)
}

/// The input gradient of the 3×3 stride-1 convolution `g` as a Winograd forward convolution
/// of `dz` ([`input_gradient_geom`]), emitted as kernel `name` when Winograd takes fewer
/// multiplies than the direct input gradient: its geometry and kernel (buffers `x` = `dz`,
/// `w` from [`transform_input_gradient_weights`], `y` = `dx`, `scratch`).
///
/// `dz` may be nonzero only in rows `0..dz_active.0` and columns `0..dz_active.1` (the rest
/// is known to be zero: the rows and columns no window of a pool after the convolution
/// reads). Then so is `dx` beyond `dz_active + 2 - pad`, and the tiles stop there: MNIST's
/// second conv has an 11 × 11 `dz` of which 10 × 10 may be nonzero, so its 13 × 13 `dx`
/// takes 6 × 6 tiles instead of 7 × 7, and its last row and column are filled with zeros.
///
/// # Errors
/// [`JitError::Codegen`].
pub fn emit_input_gradient(
    jit: &mut Jit,
    name: &str,
    g: &Conv2dGeom,
    dz_active: (usize, usize),
    enabled: bool,
) -> Result<Option<(Conv2dGeom, ConvForwardKernel)>, JitError> {
    let Some(dx) = input_gradient_geom(g) else {
        return Ok(None);
    };
    let spec = ConvForwardSpec {
        geom: dx,
        depth_multiplier: None,
        bias: false,
        bn: false,
        activation: crate::reference::Activation::Linear,
        residual: false,
        pool: None,
        count_dead: false,
        winograd: enabled,
    };
    let active = (
        (dz_active.0.min(g.out_h) + 2 - g.pad.top).min(dx.out_h),
        (dz_active.1.min(g.out_w) + 2 - g.pad.left).min(dx.out_w),
    );
    if !supported(&spec) || !cheaper(&spec, &Layout::active(&spec, active)) {
        return Ok(None);
    }
    let kernel = emit_layout(jit, name, &spec, Layout::active(&spec, active))?;
    Ok(Some((dx, kernel)))
}

/// [`transform_weights`] of the kernel the input gradient's convolution
/// ([`input_gradient_geom`] `dx`) reads: `w'[kh][kw][co][ci] = w[2 - kh][2 - kw][ci][co]`, from
/// the forward HWIO kernel `w` (`[3, 3, dx.c_out, dx.c_in]`).
pub fn transform_input_gradient_weights(dx: &Conv2dGeom, w: &[f32], out: &mut Vec<f32>) {
    let (ci, co) = (dx.c_out, dx.c_in);
    let mut turned = vec![0.0f32; 9 * ci * co];
    for kh in 0..3 {
        for kw in 0..3 {
            let src = &w[((2 - kh) * 3 + (2 - kw)) * ci * co..][..ci * co];
            let dst = &mut turned[(kh * 3 + kw) * ci * co..][..ci * co];
            for (i, row) in src.chunks_exact(co).enumerate() {
                for (o, &v) in row.iter().enumerate() {
                    dst[o * ci + i] = v;
                }
            }
        }
    }
    out.resize(weights_len(dx), 0.0);
    transform_weights(dx, &turned, out);
}
