//! The compiled model: JIT kernels for one graph, batch size and mode, and their execution.
//!
//! Each fused group (see `crate::passes`) headed by a `Conv2D`, `DepthwiseConv2D` or `Dense`
//! becomes one forward kernel writing the group's last output; in training its backward is
//! the fused pool + activation backward (through the recorded argmax) or the activation
//! backward, then the weight, bias and input gradients. In training a group may hold a frozen
//! batch-norm (folded like inference's; backward scales the gradient by it) and a residual
//! (whose input receives the pre-activation gradient as it is). Anything the JIT cannot compile runs
//! on the reference kernels, with one warning naming the layer and the reason. Kernels are
//! specialised on the batch size, so a session compiles one model per batch size it meets.
//!
//! A 3×3 stride-1 convolution runs by Winograd's F(2×2, 3×3) wherever that takes fewer
//! multiplies than the direct kernels (`cnntui_kernels::jit::conv::winograd`): its forward
//! kernel, its input gradient (a Winograd forward convolution of `dz` with the kernel turned
//! by 180°) and its kernel gradient (two transforms and 16 products over the batch). The
//! transformed kernels are prepared in plain Rust before each run, as the direct kernel's
//! panels are. `CNNTUI_WINOGRAD=0` compiles the direct kernels instead (to compare, or to rule
//! Winograd's rounding out).
//!
//! The optimizer step has its own compiled kernels ([`optimizer::CompiledOptimizer`]). The
//! layers that are not convolutions or dense layers (batch-norm in training, softmax, ...) run
//! on the reference kernels.

pub mod optimizer;

use std::time::Instant;

use cnntui_kernels::jit::backward::activation::emit_activation_backward;
use cnntui_kernels::jit::backward::pool::ArgmaxIndex;
use cnntui_kernels::jit::backward::{
    conv as bconv, dense as bdense, depthwise as bdepthwise, pool as bpool,
};
use cnntui_kernels::jit::conv::winograd::weight_grad::{self, WeightGrad};
use cnntui_kernels::jit::conv::{
    ConvForwardSpec, PoolEpilogue, WeightLayout, emit_conv_forward, winograd,
};
use cnntui_kernels::jit::dense::{DenseSpec, emit_dense_forward};
use cnntui_kernels::jit::pool::{PoolSpec, emit_pool_forward};
use cnntui_kernels::jit::{Bound, Jit, JitError, Kernel};
use cnntui_kernels::reference::Activation;
use cnntui_kernels::{Conv2dGeom, Pool2dGeom};

use super::Mode;
use super::session::{conv_geom, pool_geom};
use crate::ir::{Graph, NodeId, Op};

/// The backward kernels of a group, in the order they run.
#[derive(Clone, Debug)]
pub struct GroupBackward {
    /// `dz` (the pre-activation gradient, conv-output shaped) from the group's output
    /// gradient: the fused pool + activation backward, or the activation backward.
    pub to_dz: Option<Bound>,
    pub weight: WeightGradKernels,
    pub bias: Option<Bound>,
    /// The kernel transpose the input gradient reads (none for a depthwise convolution, whose
    /// input gradient reads the kernel as it is).
    pub transpose: Option<Bound>,
    /// The input gradient: buffers `dz`, the (transposed) kernel, `dx`, and with
    /// `input_winograd` a per-call scratch.
    pub input: Bound,
    /// Length of the transposed kernel buffer.
    pub wt_len: usize,
    /// A 3×3 stride-1 convolution's input gradient run as a Winograd forward convolution of
    /// `dz` (this geometry; see `winograd::input_gradient_geom`), reading the turned kernel
    /// `winograd::transform_input_gradient_weights` prepares (then `transpose` is `None`).
    pub input_winograd: Option<Conv2dGeom>,
}

/// How a group computes its kernel gradient.
#[derive(Clone, Debug)]
pub enum WeightGradKernels {
    /// One kernel: buffers `x`, `dz`, `dw` (overwritten).
    Direct(Bound),
    /// A 3×3 stride-1 convolution's by Winograd (`winograd::weight_grad`): one kernel
    /// (buffers `x`, `dz`, `partial`, per-call scratch), then `weight_grad::kernel_gradient`
    /// turns the partial products into `dw`.
    Winograd { kernel: Bound, wg: WeightGrad },
}

/// One compiled group.
#[derive(Clone, Debug)]
pub struct GroupKernels {
    pub head: NodeId,
    /// The node whose output the forward kernel writes.
    pub tail: NodeId,
    pub members: Vec<NodeId>,
    pub forward: Bound,
    /// The forward kernel's buffer names, in call order.
    pub forward_buffers: Vec<&'static str>,
    /// A regular convolution's geometry and how its forward kernel reads the weights
    /// (packed in panels, or Winograd-transformed), prepared before each run.
    pub packed_weights: Option<(Conv2dGeom, WeightLayout)>,
    /// The activation the group applies (inside the kernel unless `deferred`).
    pub activation: Activation,
    /// An activation the kernel leaves to the reference code (softmax/sigmoid/tanh outputs).
    pub deferred: bool,
    pub bn: Option<NodeId>,
    /// The residual input of a fused `Add`.
    pub residual: Option<NodeId>,
    pub max_pool: Option<NodeId>,
    /// Conv output elements per sample (the pre-pool tensor).
    pub conv_out: usize,
    /// Pre-pool activations per sample the forward kernel's `dead` counts cover (under a
    /// pool, the rows and columns its windows read).
    pub computed: usize,
    pub backward: Option<GroupBackward>,
}

/// The kernels of a pooling layer outside any fused group.
#[derive(Clone, Debug)]
pub struct PoolKernels {
    /// Buffers `x`, `y`, then `argmax` (max-pool in training).
    pub forward: Bound,
    pub argmax: bool,
    /// Training: buffers `argmax` (max only), `dy`, `dx` (overwritten).
    pub backward: Option<Bound>,
}

/// JIT kernels for one graph at one batch size and mode.
#[derive(Debug)]
pub struct CompiledModel {
    pub batch: usize,
    pub mode: Mode,
    /// `groups[node]` for the head of each compiled group.
    pub groups: Vec<Option<GroupKernels>>,
    /// `in_group[node]`: the head of the compiled group the node belongs to.
    pub in_group: Vec<Option<NodeId>>,
    /// `pools[node]` for each standalone max- or average-pooling layer.
    pub pools: Vec<Option<PoolKernels>>,
    pub warnings: Vec<String>,
    pub kernels: usize,
    pub compile_ms: f64,
}

struct Pending {
    head: NodeId,
    tail: NodeId,
    members: Vec<NodeId>,
    activation: Activation,
    deferred: bool,
    bn: Option<NodeId>,
    residual: Option<NodeId>,
    max_pool: Option<NodeId>,
    conv_out: usize,
    computed: usize,
    forward: (usize, Vec<usize>),
    forward_buffers: Vec<&'static str>,
    packed_weights: Option<(Conv2dGeom, WeightLayout)>,
    /// `(buffer index, f32s)` of the forward kernel's per-call scratch.
    call_scratch: Option<(usize, usize)>,
    backward: Option<Vec<(usize, Vec<usize>)>>,
    wt_len: usize,
    has_transpose: bool,
    input_winograd: Option<Conv2dGeom>,
    /// `(buffer index, f32s)` of the input gradient kernel's per-call scratch.
    input_scratch: Option<(usize, usize)>,
    /// The kernel gradient by Winograd (two kernels in `backward`).
    weight_winograd: Option<WeightGrad>,
    has_bias: bool,
    has_to_dz: bool,
}

/// Whether 3×3 stride-1 convolutions may run as Winograd kernels: yes unless
/// `CNNTUI_WINOGRAD=0` (to compare with the direct kernels, or to rule Winograd's rounding
/// out when chasing a numerical difference).
fn winograd_enabled() -> bool {
    std::env::var_os("CNNTUI_WINOGRAD").is_none_or(|v| v != "0")
}

fn unsupported(what: impl Into<String>) -> JitError {
    JitError::Unsupported(what.into())
}

impl CompiledModel {
    /// The passes of node `v`'s convolution that run by Winograd: `forward`, `input_grad`,
    /// `weight_grad` (empty for other nodes and for direct kernels).
    pub fn winograd_passes(&self, v: NodeId) -> Vec<&'static str> {
        let Some(g) = self.groups.get(v).and_then(Option::as_ref) else {
            return Vec::new();
        };
        let mut passes = Vec::new();
        if matches!(g.packed_weights, Some((_, WeightLayout::Winograd))) {
            passes.push("forward");
        }
        if let Some(b) = &g.backward {
            if b.input_winograd.is_some() {
                passes.push("input_grad");
            }
            if matches!(b.weight, WeightGradKernels::Winograd { .. }) {
                passes.push("weight_grad");
            }
        }
        passes
    }

    /// What, besides the batch size and mode, decides how `graph` compiles: whether each
    /// batch-norm fused into a group is trainable (a frozen one is compiled into its group in
    /// training, a trainable one is not).
    pub fn variant(graph: &Graph) -> Vec<bool> {
        graph
            .groups
            .iter()
            .flat_map(|g| &g.members)
            .filter(|&&m| matches!(graph.nodes[m].op, Op::BatchNormalization { .. }))
            .map(|&m| graph.nodes[m].trainable)
            .collect()
    }

    /// Compiles every group of `graph` (run `crate::passes::optimize` first) for batches of
    /// `batch` samples in `mode`. Groups the JIT cannot compile are left to the reference
    /// kernels, with a warning each.
    ///
    /// # Errors
    /// [`JitError::NoFma`] or [`JitError::Setup`] when there is no JIT on this machine;
    /// [`JitError::Codegen`] when Cranelift fails on the batch.
    pub fn compile(graph: &Graph, batch: usize, mode: Mode) -> Result<Self, JitError> {
        Self::compile_with_progress(graph, batch, mode, &mut |_, _| {})
    }

    /// [`CompiledModel::compile`], calling `progress(done, total)` after each layer group.
    ///
    /// # Errors
    /// As [`CompiledModel::compile`].
    pub fn compile_with_progress(
        graph: &Graph,
        batch: usize,
        mode: Mode,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, JitError> {
        let started = Instant::now();
        let mut jit = Jit::new()?;
        let mut warnings = Vec::new();
        // (reason, layer) of every layer the JIT cannot compile.
        let mut fallbacks: Vec<(String, String)> = Vec::new();
        let mut pending = Vec::new();
        let mut kernel_count = 0;
        let heads: Vec<Vec<NodeId>> = graph
            .groups
            .iter()
            .map(|g| g.members.clone())
            .chain(
                // Convolutions and dense layers outside any group run as groups of one.
                graph
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(v, n)| {
                        matches!(
                            n.op,
                            Op::Conv2D { .. } | Op::DepthwiseConv2D { .. } | Op::Dense { .. }
                        ) && graph.group_of(*v).is_none()
                    })
                    .map(|(v, _)| vec![v]),
            )
            .collect();
        let total = heads.len();
        for (done, members) in heads.into_iter().enumerate() {
            progress(done, total);
            let before = kernel_count;
            let mark = jit.defined();
            match compile_group(&mut jit, graph, &members, batch, mode, &mut kernel_count) {
                Ok(p) => pending.push(p),
                Err(JitError::Unsupported(why)) => {
                    kernel_count = before;
                    jit.truncate(mark);
                    fallbacks.push((why, graph.nodes[members[0]].name.clone()));
                }
                Err(e) => return Err(e),
            }
        }
        // Standalone pooling layers, after every group.
        let mut pool_pending = Vec::new();
        for (v, node) in graph.nodes.iter().enumerate() {
            let max = match node.op {
                Op::MaxPooling2D { .. } => true,
                Op::AveragePooling2D { .. } => false,
                _ => continue,
            };
            if graph.group_of(v).is_some() {
                continue;
            }
            let mark = jit.defined();
            match compile_pool(&mut jit, graph, v, max, batch, mode) {
                Ok(p) => pool_pending.push(p),
                Err(JitError::Unsupported(why)) => {
                    jit.truncate(mark);
                    fallbacks.push((why, node.name.clone()));
                }
                Err(e) => return Err(e),
            }
        }
        warnings.extend(fallback_warnings(fallbacks));
        let kernels = jit.finish()?;
        progress(total, total);
        let mut kernels = kernels.into_iter();
        let mut take = |(items, lens): (usize, Vec<usize>)| -> Result<Bound, JitError> {
            let k: Kernel = kernels
                .next()
                .ok_or_else(|| unsupported("kernel count mismatch"))?;
            Ok(k.bind(lens, items))
        };
        let mut groups = vec![None; graph.nodes.len()];
        let mut in_group = vec![None; graph.nodes.len()];
        for p in pending {
            let mut forward = take(p.forward)?;
            if let Some((index, len)) = p.call_scratch {
                forward = forward.with_call_scratch(index, len);
            }
            let backward = match p.backward {
                Some(list) => {
                    let mut it = list.into_iter();
                    let mut next = || {
                        it.next()
                            .ok_or_else(|| unsupported("backward kernel missing"))
                    };
                    let to_dz = if p.has_to_dz {
                        Some(take(next()?)?)
                    } else {
                        None
                    };
                    let weight = match p.weight_winograd {
                        Some(wg) => WeightGradKernels::Winograd {
                            kernel: take(next()?)?.with_call_scratch(3, wg.scratch_len()),
                            wg,
                        },
                        None => WeightGradKernels::Direct(take(next()?)?),
                    };
                    let bias = if p.has_bias {
                        Some(take(next()?)?)
                    } else {
                        None
                    };
                    // A depthwise convolution's input gradient reads the kernel as it is, a
                    // Winograd one the kernel prepared outside the JIT.
                    let transpose = if p.has_transpose {
                        Some(take(next()?)?)
                    } else {
                        None
                    };
                    let mut input = take(next()?)?;
                    if let Some((index, len)) = p.input_scratch {
                        input = input.with_call_scratch(index, len);
                    }
                    Some(GroupBackward {
                        to_dz,
                        weight,
                        bias,
                        transpose,
                        input,
                        wt_len: p.wt_len,
                        input_winograd: p.input_winograd,
                    })
                }
                None => None,
            };
            for &m in &p.members {
                in_group[m] = Some(p.head);
            }
            groups[p.head] = Some(GroupKernels {
                head: p.head,
                tail: p.tail,
                members: p.members,
                forward,
                forward_buffers: p.forward_buffers,
                packed_weights: p.packed_weights,
                activation: p.activation,
                deferred: p.deferred,
                bn: p.bn,
                residual: p.residual,
                max_pool: p.max_pool,
                conv_out: p.conv_out,
                computed: p.computed,
                backward,
            });
        }
        let mut pools = vec![None; graph.nodes.len()];
        for p in pool_pending {
            let forward = take(p.forward)?;
            let backward = match p.backward {
                Some(b) => Some(take(b)?),
                None => None,
            };
            kernel_count += 1 + usize::from(backward.is_some());
            pools[p.node] = Some(PoolKernels {
                forward,
                argmax: p.argmax,
                backward,
            });
        }
        Ok(CompiledModel {
            batch,
            mode,
            groups,
            in_group,
            pools,
            warnings,
            kernels: kernel_count,
            compile_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }
}

struct PoolPending {
    node: NodeId,
    argmax: bool,
    forward: (usize, Vec<usize>),
    backward: Option<(usize, Vec<usize>)>,
}

/// Emits a standalone pooling layer's forward kernel and, in training, its backward.
fn compile_pool(
    jit: &mut Jit,
    graph: &Graph,
    v: NodeId,
    max: bool,
    n: usize,
    mode: Mode,
) -> Result<PoolPending, JitError> {
    let train = mode == Mode::Train;
    let g: Pool2dGeom = pool_geom(graph, v, n);
    let name = &graph.nodes[v].name;
    let spec = PoolSpec {
        geom: g,
        max,
        record_argmax: max && train,
    };
    let k = emit_pool_forward(jit, &format!("{name}_forward"), &spec)?;
    let (x_len, y_len) = (g.input_len(), g.output_len());
    let lens = k
        .buffers
        .iter()
        .map(|b| if *b == "x" { x_len } else { y_len })
        .collect();
    let forward = (n * k.items_per_sample, lens);
    let argmax = k.buffers.contains(&"argmax");
    let backward = if !train {
        None
    } else if argmax {
        let items = bpool::emit_max_pool_backward(
            jit,
            &format!("{name}_backward"),
            &g,
            ArgmaxIndex::Buffer,
        )?;
        Some((items, vec![y_len, y_len, x_len]))
    } else if !max {
        let items = bpool::emit_avg_pool_backward(jit, &format!("{name}_backward"), &g)?;
        Some((items, vec![y_len, x_len]))
    } else {
        return Err(unsupported("max-pool backward without an argmax"));
    };
    Ok(PoolPending {
        node: v,
        argmax,
        forward,
        backward,
    })
}

/// One warning per reason for the layers that fall back to the reference kernels, naming
/// each layer.
fn fallback_warnings(fallbacks: Vec<(String, String)>) -> Vec<String> {
    let mut by_reason: Vec<(String, Vec<String>)> = Vec::new();
    for (why, layer) in fallbacks {
        match by_reason.iter_mut().find(|(w, _)| *w == why) {
            Some((_, layers)) => layers.push(layer),
            None => by_reason.push((why, vec![layer])),
        }
    }
    by_reason
        .into_iter()
        .map(|(why, layers)| match &layers[..] {
            [one] => format!("layer `{one}` runs on the reference kernels: {why}"),
            _ => format!(
                "{} layers ({}) run on the reference kernels: {why}",
                layers.len(),
                layers
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
        .collect()
}

/// Emits one group's kernels; returns what `compile` needs to bind them, in emission order.
fn compile_group(
    jit: &mut Jit,
    graph: &Graph,
    members: &[NodeId],
    n: usize,
    mode: Mode,
    count: &mut usize,
) -> Result<Pending, JitError> {
    let head = members[0];
    let tail = *members.last().unwrap_or(&head);
    let node = &graph.nodes[head];
    let train = mode == Mode::Train;
    let mut activation = node.op.activation().unwrap_or(Activation::Linear);
    let (mut bn, mut residual, mut pool) = (None, None, None);
    for &m in &members[1..] {
        match graph.nodes[m].op {
            Op::BatchNormalization { .. } => bn = Some(m),
            Op::Add => {
                residual = graph.nodes[m]
                    .inputs
                    .iter()
                    .copied()
                    .find(|&i| !members.contains(&i))
            }
            Op::Activation(a) | Op::ReLU(a) => activation = a,
            Op::MaxPooling2D { .. } | Op::AveragePooling2D { .. } => pool = Some(m),
            _ => {
                return Err(unsupported(format!(
                    "`{}` in a fused group",
                    graph.nodes[m].name
                )));
            }
        }
    }
    // A frozen batch-norm is a fixed per-channel affine map in training too (Keras runs it in
    // inference mode), so the inference epilogue computes it and backward scales `dz` by it
    // (`Session::jit_backward`). One made trainable after fusion needs batch statistics: the
    // group then runs on the reference kernels, node by node.
    if train && bn.is_some_and(|b| graph.nodes[b].trainable) {
        return Err(unsupported("trainable batch-norm fused in training"));
    }
    let in_kernel = matches!(
        activation,
        Activation::Linear | Activation::ReLU | Activation::ReLU6
    );
    // An output activation the kernels do not compute (softmax, sigmoid, tanh) is applied by
    // the reference code afterwards; only possible when nothing follows it in the group.
    let deferred = !in_kernel;
    if deferred && (tail != head || pool.is_some()) {
        return Err(unsupported(format!("{activation:?} inside a fused group")));
    }
    let kernel_act = if deferred {
        Activation::Linear
    } else {
        activation
    };
    let name = |what: &str| format!("{}_{what}", graph.nodes[head].name);
    let mut backward = Vec::new();
    let (forward, forward_buffers, conv_out, computed, wt_len, has_bias, has_to_dz, max_pool);
    let mut packed_weights = None;
    let mut call_scratch = None;
    let (mut has_transpose, mut input_winograd, mut input_scratch) = (false, None, None);
    let mut weight_winograd = None;
    match node.op {
        Op::Conv2D { use_bias, .. } | Op::DepthwiseConv2D { use_bias, .. } => {
            let g: Conv2dGeom = conv_geom(graph, head, n);
            let depth_multiplier = match node.op {
                Op::DepthwiseConv2D {
                    depth_multiplier, ..
                } => Some(depth_multiplier),
                _ => None,
            };
            let pool_epi = match pool {
                Some(p) => {
                    let pg: Pool2dGeom = pool_geom(graph, p, n);
                    let max = matches!(graph.nodes[p].op, Op::MaxPooling2D { .. });
                    if train && !max {
                        return Err(unsupported("average pool fused in training"));
                    }
                    Some(
                        PoolEpilogue::new(
                            max,
                            (g.out_h, g.out_w),
                            (pg.k_h, pg.k_w),
                            (pg.stride_h, pg.stride_w),
                            pg.pad,
                            train,
                        )
                        .ok_or_else(|| unsupported("pool window"))?,
                    )
                }
                None => None,
            };
            let spec = ConvForwardSpec {
                geom: g,
                depth_multiplier,
                bias: use_bias,
                bn: bn.is_some(),
                activation: kernel_act,
                residual: residual.is_some(),
                pool: pool_epi,
                count_dead: train,
                winograd: winograd_enabled(),
            };
            let k = emit_conv_forward(jit, &name("forward"), &spec)?;
            *count += 1;
            let (oh, ow, oc) = k.out_shape;
            let items = n * k.items_per_sample;
            let lens: Vec<usize> = k
                .buffers
                .iter()
                .map(|b| match *b {
                    "x" => g.input_len(),
                    "w" => k.weights.len(&g, graph.nodes[head].params[0].elems()),
                    "scratch" => 0,
                    "bias" | "scale" | "shift" => g.c_out,
                    "residual" => n * g.out_h * g.out_w * g.c_out,
                    "y" | "argmax" => n * oh * ow * oc,
                    _ => items, // dead
                })
                .collect();
            forward = (items, lens);
            forward_buffers = k.buffers.clone();
            if k.weights != WeightLayout::Hwio {
                packed_weights = Some((g, k.weights));
            }
            call_scratch = k.buffer("scratch").map(|i| (i, k.call_scratch));
            conv_out = g.out_h * g.out_w * g.c_out;
            computed = k.computed_per_sample;
            max_pool = pool_epi.filter(|p| p.max).and(pool);
            has_bias = use_bias;
            if train {
                // dz from the group's output gradient.
                has_to_dz = pool.is_some() || activation != Activation::Linear;
                if let Some(p) = pool {
                    let pg = pool_geom(graph, p, n);
                    let items = bpool::emit_pool_relu_backward(
                        jit,
                        &name("pool_backward"),
                        &pg,
                        activation,
                    )?;
                    let y_len = n * pg.out_h * pg.out_w * pg.c;
                    backward.push((items, vec![y_len, y_len, y_len, n * conv_out]));
                    *count += 1;
                } else if activation != Activation::Linear {
                    let len = n * conv_out;
                    let items = emit_activation_backward(
                        jit,
                        &name("activation_backward"),
                        activation,
                        len,
                    )?;
                    backward.push((items, vec![len, len, len]));
                    *count += 1;
                }
                // Under a pool, dz is zero outside the rows and columns its windows read.
                let active = pool_epi.map_or((g.out_h, g.out_w), |p| {
                    let reach = |out: usize, s: usize, k: usize, pad: usize| {
                        ((out - 1) * s + k).saturating_sub(pad)
                    };
                    (
                        reach(p.out_h, p.stride_h, p.k_h, p.pad.top).min(g.out_h),
                        reach(p.out_w, p.stride_w, p.k_w, p.pad.left).min(g.out_w),
                    )
                });
                let wg = WeightGrad::new(&g, active)
                    .filter(|_| depth_multiplier.is_none() && winograd_enabled());
                if let Some(wg) = wg {
                    let items = weight_grad::emit(jit, &name("weight_grad"), &wg)?;
                    let lens = vec![g.input_len(), n * conv_out, wg.partial_len(), 0];
                    backward.push((items, lens));
                    weight_winograd = Some(wg);
                } else {
                    let items = match depth_multiplier {
                        None => bconv::emit_conv2d_backward_weight(jit, &name("weight_grad"), &g)?,
                        Some(m) => bdepthwise::emit_depthwise_backward_weight(
                            jit,
                            &name("weight_grad"),
                            &g,
                            m,
                        )?,
                    };
                    backward.push((
                        items,
                        vec![
                            g.input_len(),
                            n * conv_out,
                            graph.nodes[head].params[0].elems(),
                        ],
                    ));
                }
                if use_bias {
                    let items = bconv::emit_bias_backward(
                        jit,
                        &name("bias_grad"),
                        n * g.out_h * g.out_w,
                        g.c_out,
                    )?;
                    backward.push((items, vec![n * conv_out, g.c_out]));
                    *count += 1;
                }
                let w_len = graph.nodes[head].params[0].elems();
                if let Some(m) = depth_multiplier {
                    wt_len = 0;
                    let items =
                        bdepthwise::emit_depthwise_backward_input(jit, &name("input_grad"), &g, m)?;
                    backward.push((items, vec![n * conv_out, w_len, g.input_len()]));
                    *count += 2;
                } else if let Some((dx_geom, k)) = winograd::emit_input_gradient(
                    jit,
                    &name("input_grad"),
                    &g,
                    active,
                    winograd_enabled(),
                )? {
                    wt_len = winograd::weights_len(&dx_geom);
                    let items = n * k.items_per_sample;
                    backward.push((items, vec![n * conv_out, wt_len, g.input_len(), 0]));
                    input_winograd = Some(dx_geom);
                    input_scratch = k.buffer("scratch").map(|i| (i, k.call_scratch));
                    *count += 2;
                } else {
                    has_transpose = true;
                    wt_len = bconv::conv2d_transposed_weight_len(&g);
                    let items =
                        bconv::emit_conv2d_weight_transpose(jit, &name("weight_transpose"), &g)?;
                    backward.push((items, vec![w_len, wt_len]));
                    let items = bconv::emit_conv2d_backward_input(jit, &name("input_grad"), &g)?;
                    backward.push((items, vec![n * conv_out, wt_len, g.input_len()]));
                    *count += 3;
                }
            } else {
                (wt_len, has_to_dz) = (0, false);
            }
        }
        Op::Dense {
            units, use_bias, ..
        } => {
            let d_in = graph.nodes[node.inputs[0]].shape.elems();
            let spec = DenseSpec {
                d_in,
                d_out: units,
                bias: use_bias,
                activation: kernel_act,
            };
            let k = emit_dense_forward(jit, &name("forward"), &spec)?;
            *count += 1;
            let lens = k
                .buffers
                .iter()
                .map(|b| match *b {
                    "x" => n * d_in,
                    "w" => d_in * units,
                    "bias" => units,
                    _ => n * units,
                })
                .collect();
            forward = (n, lens);
            forward_buffers = k.buffers.clone();
            conv_out = units;
            computed = units;
            max_pool = None;
            has_bias = use_bias;
            if train {
                has_to_dz = !deferred && activation != Activation::Linear;
                if has_to_dz {
                    let len = n * units;
                    let items = emit_activation_backward(
                        jit,
                        &name("activation_backward"),
                        activation,
                        len,
                    )?;
                    backward.push((items, vec![len, len, len]));
                    *count += 1;
                }
                let items =
                    bdense::emit_dense_backward_weight(jit, &name("weight_grad"), n, d_in, units)?;
                backward.push((items, vec![n * d_in, n * units, d_in * units]));
                if use_bias {
                    let items = bconv::emit_bias_backward(jit, &name("bias_grad"), n, units)?;
                    backward.push((items, vec![n * units, units]));
                    *count += 1;
                }
                has_transpose = true;
                wt_len = bdense::dense_transposed_weight_len(d_in, units);
                let items = bdense::emit_dense_weight_transpose(
                    jit,
                    &name("weight_transpose"),
                    d_in,
                    units,
                )?;
                backward.push((items, vec![d_in * units, wt_len]));
                let items =
                    bdense::emit_dense_backward_input(jit, &name("input_grad"), n, d_in, units)?;
                backward.push((items, vec![n * units, wt_len, n * d_in]));
                *count += 3;
            } else {
                (wt_len, has_to_dz) = (0, false);
            }
        }
        _ => {
            return Err(unsupported(format!(
                "{} as the head of a group",
                node.op.class_name()
            )));
        }
    }
    Ok(Pending {
        head,
        tail,
        members: members.to_vec(),
        activation,
        deferred,
        bn,
        residual,
        max_pool,
        conv_out,
        computed,
        forward,
        forward_buffers,
        packed_weights,
        call_scratch,
        backward: train.then_some(backward),
        wt_len,
        has_transpose,
        input_winograd,
        input_scratch,
        weight_winograd,
        has_bias,
        has_to_dz,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mobilenet(training: bool) -> Graph {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mobilenet_v2.ron");
        let mut g = crate::ir::load(&path).expect("lowers");
        crate::passes::optimize(
            &mut g,
            &crate::passes::Target {
                training,
                requested: vec![],
            },
        )
        .expect("optimizes");
        g
    }

    #[test]
    fn layers_the_jit_cannot_compile_are_named_once_per_reason() {
        // Average pools fused in training have no JIT backward (max pools do).
        let src = r#"Model(name: "avg", input: (12, 12, 3), layers: [
            Conv2D(name: "a", filters: 4, kernel_size: 3, activation: ReLU),
            AveragePooling2D(pool_size: 2),
            Conv2D(name: "b", filters: 4, kernel_size: 3, activation: ReLU),
            AveragePooling2D(pool_size: 2),
            Flatten(), Dense(units: 2, activation: Softmax)])"#;
        let path = std::path::Path::new("avg.ron");
        let file = crate::model::ModelFile::from_source(path, src).expect("parses");
        let mut g = crate::ir::lower(&file).expect("lowers");
        crate::passes::optimize(
            &mut g,
            &crate::passes::Target {
                training: true,
                requested: vec![],
            },
        )
        .expect("optimizes");
        let c = CompiledModel::compile(&g, 2, Mode::Train).expect("compiles");
        assert_eq!(
            c.warnings,
            ["2 layers (`a`, `b`) run on the reference kernels: average pool fused in training"]
        );
        let one = fallback_warnings(vec![("why".into(), "conv".into())]);
        assert_eq!(one, ["layer `conv` runs on the reference kernels: why"]);
        // MobileNetV2 trains wholly on the JIT: depthwise convolutions included.
        let c = CompiledModel::compile(&mobilenet(true), 2, Mode::Train).expect("compiles");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn unfreezing_a_folded_batch_norm_changes_the_variant() {
        let mut g = mobilenet(false);
        let before = CompiledModel::variant(&g);
        assert!(!before.is_empty() && before.iter().all(|&t| t));
        let bn = g.node_by_name("bn_Conv1").expect("bn_Conv1");
        g.nodes[bn].trainable = false;
        assert_ne!(CompiledModel::variant(&g), before);
    }
}
