//! A session runs a graph forward and backward on the reference kernels, splitting the batch
//! across rayon's threads.
//!
//! Buffers are allocated once per batch size and reused. A node's output stays available after
//! `forward` (the dashboard's feature maps and the visualisations read them); after `backward`
//! the parameter gradients and any requested activation gradients are available.

use cnntui_kernels::reference::{self as k, Activation};
use cnntui_kernels::{Conv2dGeom, Padding2d, Pool2dGeom};
use rayon::prelude::*;

use std::sync::Arc;

use cnntui_kernels::jit::Buf;
use cnntui_kernels::jit::conv::winograd::{self, weight_grad};

use super::compiled::{CompiledModel, GroupKernels, PoolKernels, WeightGradKernels};
use super::{ParamStore, Plan, Rng, im2col};
use crate::ir::{Graph, NodeId, Op};

/// Training (dropout on, batch statistics) or inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Train,
    Infer,
}

/// How the loss meets the output: on the logits when the output ends in the activation the
/// loss pairs with (softmax + cross-entropy, sigmoid + binary cross-entropy), as Keras does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputLink {
    /// Backward starts from the gradient with respect to the output's pre-activation.
    Logits,
    /// Backward starts from the gradient with respect to the output itself.
    Output,
}

/// What a node keeps from forward for backward.
#[derive(Clone, Debug, Default)]
struct Aux {
    argmax: Vec<u32>,
    mask: Vec<f32>,
    bn_mean: Vec<f32>,
    bn_var: Vec<f32>,
    /// Whether this BatchNormalization used batch statistics in the last forward.
    bn_batch_stats: bool,
}

/// Forward and backward buffers for one graph.
pub struct Session {
    batch: usize,
    acts: Vec<Vec<f32>>,
    /// Gradient buffers, kept between steps: a buffer's old contents are stale until
    /// `given` says this step's gradient arrived (the first contribution replaces them; a
    /// node with several consumers adds the others), so nothing is zeroed that a kernel or a
    /// contribution then overwrites.
    grads: Vec<Vec<f32>>,
    given: Vec<bool>,
    aux: Vec<Aux>,
    /// Per group head, its kernel packed for the JIT forward kernel (regular convolutions).
    packed: Vec<Vec<f32>>,
    /// Per group head, the JIT backward's scratch: the pre-activation gradient `dz` and the
    /// transposed kernel, kept between steps (every element is overwritten before it is read).
    dz: Vec<Vec<f32>>,
    wt: Vec<Vec<f32>>,
    /// The Winograd kernel gradients' partial products: one buffer for every layer, as
    /// backward runs one group at a time (a 512 × 512 layer's are 64 MiB; one per layer
    /// took VGG16's training 540 MiB more memory).
    winograd_partial: Vec<f32>,
    /// The output's pre-activation, kept when the loss works on logits.
    logits: Vec<f32>,
    link: OutputLink,
    consumers: Vec<usize>,
    /// Gradients of the parameters after `backward` (zero for layers that get none).
    pub param_grads: ParamStore,
    /// Fraction of exactly-zero outputs of every ReLU-family node in the last training
    /// forward (dead ReLUs), `None` for other nodes.
    pub dead_fraction: Vec<Option<f32>>,
    backend: Backend,
    /// Compiled models by (batch size, mode, [`CompiledModel::variant`]), for
    /// [`Backend::Jit`]: unfreezing a fused batch-norm compiles the model anew.
    compiled: std::collections::HashMap<(usize, Mode, Vec<bool>), Arc<CompiledModel>>,
    /// Messages for the user: layers that fell back to the reference kernels, a JIT that
    /// could not start. Drained by [`Session::take_warnings`].
    warnings: Vec<String>,
    /// Per node, time spent in forward and backward since timing was enabled (`cnntui
    /// bench`); `None` when not timing.
    pub timings: Option<Vec<[std::time::Duration; 2]>>,
}

/// What computes convolutions and dense layers; everything else runs on the reference
/// kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// The reference kernels (the oracle).
    #[default]
    Reference,
    /// An im2col buffer per layer and `ndarray`'s GEMM: the honest baseline `cnntui bench
    /// --baselines` compares against.
    Im2col,
    /// Cranelift-compiled kernels for every fused group (see [`CompiledModel`]); what the JIT
    /// cannot compile runs on the reference kernels.
    Jit,
}

/// Splits a batch into contiguous chunks, one per thread, and runs `f(k, x_chunk, y_chunk)`.
fn for_batch(
    n: usize,
    x: &[f32],
    x_per: usize,
    y: &mut [f32],
    y_per: usize,
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync,
) {
    let chunk = n.div_ceil(rayon::current_num_threads()).max(1);
    y[..n * y_per]
        .par_chunks_mut(chunk * y_per)
        .zip(x[..n * x_per].par_chunks(chunk * x_per))
        .for_each(|(yc, xc)| f(yc.len() / y_per.max(1), xc, yc));
}

/// Runs `f(k, a_chunk, b_chunk, partial)` per batch chunk and sums the partial results (weight
/// gradients) into `out`.
fn sum_over_batch(
    n: usize,
    a: &[f32],
    a_per: usize,
    b: &[f32],
    b_per: usize,
    out: &mut [f32],
    f: impl Fn(usize, &[f32], &[f32], &mut [f32]) + Sync,
) {
    let chunk = n.div_ceil(rayon::current_num_threads()).max(1);
    let len = out.len();
    // Partial sums are collected in batch order and added in that order, so the result does
    // not depend on how rayon scheduled the chunks.
    let parts: Vec<Vec<f32>> = a[..n * a_per]
        .par_chunks(chunk * a_per)
        .zip(b[..n * b_per].par_chunks(chunk * b_per))
        .map(|(ac, bc)| {
            let mut part = vec![0.0; len];
            f(ac.len() / a_per.max(1), ac, bc, &mut part);
            part
        })
        .collect();
    out.fill(0.0);
    for part in parts {
        out.iter_mut().zip(&part).for_each(|(s, p)| *s += p);
    }
}

pub(crate) fn conv_geom(graph: &Graph, v: NodeId, n: usize) -> Conv2dGeom {
    let node = &graph.nodes[v];
    let input = &graph.nodes[node.inputs[0]].shape;
    let hwc = input.hwc().unwrap_or((1, 1, input.elems()));
    let (out_h, out_w, c_out) = node.shape.hwc().unwrap_or((1, 1, node.shape.elems()));
    let (kernel, strides, padding) = match node.op {
        Op::Conv2D {
            kernel,
            strides,
            padding,
            ..
        }
        | Op::DepthwiseConv2D {
            kernel,
            strides,
            padding,
            ..
        } => (kernel, strides, padding),
        _ => ((1, 1), (1, 1), Padding2d::default()),
    };
    Conv2dGeom {
        n,
        h: hwc.0,
        w: hwc.1,
        c_in: hwc.2,
        k_h: kernel.0,
        k_w: kernel.1,
        c_out,
        stride_h: strides.0,
        stride_w: strides.1,
        pad: padding,
        out_h,
        out_w,
    }
}

pub(crate) fn pool_geom(graph: &Graph, v: NodeId, n: usize) -> Pool2dGeom {
    let node = &graph.nodes[v];
    let (h, w, c) = graph.nodes[node.inputs[0]].shape.hwc().unwrap_or((1, 1, 1));
    let (out_h, out_w, _) = node.shape.hwc().unwrap_or((1, 1, 1));
    let (pool, strides, padding) = match node.op {
        Op::MaxPooling2D {
            pool,
            strides,
            padding,
        }
        | Op::AveragePooling2D {
            pool,
            strides,
            padding,
        } => (pool, strides, padding),
        _ => ((1, 1), (1, 1), Padding2d::default()),
    };
    Pool2dGeom {
        n,
        h,
        w,
        c,
        k_h: pool.0,
        k_w: pool.1,
        stride_h: strides.0,
        stride_w: strides.1,
        pad: padding,
        out_h,
        out_w,
    }
}

fn is_relu_family(a: Option<Activation>) -> bool {
    matches!(a, Some(Activation::ReLU | Activation::ReLU6))
}

impl Session {
    /// A session for `graph`; `link` says where the loss meets the output.
    pub fn new(graph: &Graph, link: OutputLink) -> Self {
        let nodes = graph.nodes.len();
        let consumers = graph.consumers().iter().map(Vec::len).collect();
        Session {
            batch: 0,
            acts: vec![Vec::new(); nodes],
            grads: vec![Vec::new(); nodes],
            given: vec![false; nodes],
            aux: vec![Aux::default(); nodes],
            packed: vec![Vec::new(); nodes],
            dz: vec![Vec::new(); nodes],
            wt: vec![Vec::new(); nodes],
            winograd_partial: Vec::new(),
            logits: Vec::new(),
            link,
            consumers,
            param_grads: ParamStore::zeros_like(graph),
            dead_fraction: vec![None; nodes],
            backend: Backend::Reference,
            compiled: std::collections::HashMap::new(),
            warnings: Vec::new(),
            timings: None,
        }
    }

    /// Warnings produced since the last call (each said once).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The compiled model for batches of `n` in `mode`, compiling it on first use; `None`
    /// when not on the JIT backend or when the JIT cannot run here (then the session falls
    /// back to the reference kernels for good, with a warning).
    pub fn compiled(&mut self, graph: &Graph, n: usize, mode: Mode) -> Option<Arc<CompiledModel>> {
        self.precompile(graph, n, mode, &mut |_, _| {})
    }

    /// [`Session::compiled`], reporting `progress(done, total)` while it compiles.
    pub fn precompile(
        &mut self,
        graph: &Graph,
        n: usize,
        mode: Mode,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Option<Arc<CompiledModel>> {
        if self.backend != Backend::Jit {
            return None;
        }
        let key = (n, mode, CompiledModel::variant(graph));
        if let Some(c) = self.compiled.get(&key) {
            return Some(c.clone());
        }
        match CompiledModel::compile_with_progress(graph, n, mode, progress) {
            Ok(c) => {
                if self.compiled.is_empty() {
                    self.warnings.extend(c.warnings.iter().cloned());
                }
                let c = Arc::new(c);
                self.compiled.insert(key, c.clone());
                Some(c)
            }
            Err(e) => {
                self.warnings.push(format!(
                    "the JIT is unavailable, using the reference kernels: {e}"
                ));
                self.backend = Backend::Reference;
                None
            }
        }
    }

    /// The same session computing convolutions and dense layers with `backend`.
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Starts (or restarts) per-node timing of forward and backward.
    pub fn start_timing(&mut self) {
        self.timings = Some(vec![[std::time::Duration::ZERO; 2]; self.acts.len()]);
    }

    fn record(&mut self, v: NodeId, pass: usize, since: std::time::Instant) {
        if let Some(t) = &mut self.timings {
            t[v][pass] += since.elapsed();
        }
    }

    /// The batch size of the last forward.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Output of node `v` from the last forward, `[batch, shape...]`.
    pub fn activation(&self, v: NodeId) -> &[f32] {
        &self.acts[v]
    }

    /// The model's output from the last forward.
    pub fn output<'a>(&'a self, graph: &Graph) -> &'a [f32] {
        &self.acts[graph.output]
    }

    /// The output's pre-activation (logits) from the last forward, when the loss uses them.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Gradient with respect to node `v`'s output after the last backward (empty unless the
    /// plan computed it; also empty inside a fused JIT group, which never materialises it).
    pub fn gradient(&self, v: NodeId) -> &[f32] {
        if self.given[v] { &self.grads[v] } else { &[] }
    }

    /// Runs the graph on `x` (`[n, input shape]`). In `Mode::Train`, dropout draws its masks
    /// from `rng` and trainable BatchNormalization layers use batch statistics, as Keras does;
    /// [`Session::update_moving_statistics`] then folds those into the moving averages.
    pub fn forward(
        &mut self,
        graph: &Graph,
        params: &ParamStore,
        x: &[f32],
        n: usize,
        mode: Mode,
        rng: &mut Rng,
    ) {
        self.batch = n;
        let compiled = self.compiled(graph, n, mode);
        for (v, node) in graph.nodes.iter().enumerate() {
            if let Some(c) = &compiled
                && let Some(head) = c.in_group[v]
            {
                if let Some(group) = c.groups[head].as_ref().filter(|_| head == v) {
                    let t = std::time::Instant::now();
                    self.jit_forward(graph, params, group, mode);
                    self.record(v, 0, t);
                } else if v != c.groups[head].as_ref().map_or(v, |g| g.tail) {
                    // Fused away: never written (a requested tensor is never fused).
                    self.acts[v].clear();
                }
                continue;
            }
            let len = n * node.shape.elems();
            let mut y = std::mem::take(&mut self.acts[v]);
            y.resize(len, 0.0);
            let t = std::time::Instant::now();
            let pool = compiled.as_ref().and_then(|c| c.pools[v].as_ref());
            if let Some(pk) = pool {
                let x = &self.acts[node.inputs[0]];
                let mut argmax = std::mem::take(&mut self.aux[v].argmax);
                argmax.resize(if pk.argmax { len } else { 0 }, 0);
                let mut bufs = vec![Buf::F32(x), Buf::F32Mut(&mut y)];
                if pk.argmax {
                    bufs.push(Buf::U32Mut(&mut argmax));
                }
                pk.forward.run(&mut bufs);
                self.aux[v].argmax = argmax;
            } else {
                self.forward_node(graph, params, v, x, &mut y, mode, rng);
            }
            self.record(v, 0, t);
            if mode == Mode::Train && is_relu_family(node.op.activation()) && len > 0 {
                let zeros = y.par_iter().filter(|&&v| v == 0.0).count();
                self.dead_fraction[v] = Some(zeros as f32 / len as f32);
            }
            self.acts[v] = y;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_node(
        &mut self,
        graph: &Graph,
        params: &ParamStore,
        v: NodeId,
        x: &[f32],
        y: &mut [f32],
        mode: Mode,
        rng: &mut Rng,
    ) {
        let node = &graph.nodes[v];
        let n = self.batch;
        let input = node.inputs.first().map_or(x, |&u| &self.acts[u][..]);
        let in_per = node
            .inputs
            .first()
            .map_or(0, |&u| graph.nodes[u].shape.elems());
        let out_per = node.shape.elems();
        let keep_logits = v == graph.output && self.link == OutputLink::Logits;
        let p = &params.tensors[v];
        match node.op {
            Op::Input => y.copy_from_slice(&x[..y.len()]),
            Op::Conv2D { use_bias, .. } => {
                let g = conv_geom(graph, v, n);
                let bias = use_bias.then(|| &p[1][..]);
                match self.backend {
                    Backend::Reference | Backend::Jit => {
                        for_batch(n, input, in_per, y, out_per, |k, xc, yc| {
                            k::conv2d_forward(&g.with_batch(k), xc, &p[0], bias, yc)
                        })
                    }
                    Backend::Im2col => im2col::conv_forward(&g, input, &p[0], bias, y),
                }
            }
            Op::DepthwiseConv2D {
                depth_multiplier,
                use_bias,
                ..
            } => {
                let g = conv_geom(graph, v, n);
                let bias = use_bias.then(|| &p[1][..]);
                for_batch(n, input, in_per, y, out_per, |k, xc, yc| {
                    k::depthwise_forward(&g.with_batch(k), depth_multiplier, xc, &p[0], bias, yc)
                });
            }
            Op::Dense {
                units, use_bias, ..
            } => {
                let bias = use_bias.then(|| &p[1][..]);
                match self.backend {
                    Backend::Reference | Backend::Jit => {
                        for_batch(n, input, in_per, y, out_per, |k, xc, yc| {
                            k::dense_forward(k, in_per, units, xc, &p[0], bias, yc)
                        })
                    }
                    Backend::Im2col => {
                        im2col::dense_forward(n, in_per, units, input, &p[0], bias, y)
                    }
                }
            }
            Op::MaxPooling2D { .. } => {
                let g = pool_geom(graph, v, n);
                let mut argmax = std::mem::take(&mut self.aux[v].argmax);
                argmax.resize(y.len(), 0);
                let chunk = n.div_ceil(rayon::current_num_threads()).max(1);
                y.par_chunks_mut(chunk * out_per)
                    .zip(argmax.par_chunks_mut(chunk * out_per))
                    .zip(input[..n * in_per].par_chunks(chunk * in_per))
                    .for_each(|((yc, ac), xc)| {
                        k::max_pool_forward(&g.with_batch(yc.len() / out_per), xc, yc, Some(ac))
                    });
                self.aux[v].argmax = argmax;
            }
            Op::AveragePooling2D { .. } => {
                let g = pool_geom(graph, v, n);
                for_batch(n, input, in_per, y, out_per, |k, xc, yc| {
                    k::avg_pool_forward(&g.with_batch(k), xc, yc)
                });
            }
            Op::GlobalAveragePooling2D => {
                let c = out_per;
                for_batch(n, input, in_per, y, out_per, |k, xc, yc| {
                    k::global_avg_pool_forward(k, in_per / c, c, xc, yc)
                });
            }
            Op::Flatten => y.copy_from_slice(&input[..y.len()]),
            Op::Dropout { rate } => {
                if mode == Mode::Train && rate > 0.0 {
                    let keep = 1.0 / (1.0 - rate);
                    let mask: Vec<f32> = (0..y.len())
                        .map(|_| if rng.uniform_f32() < rate { 0.0 } else { keep })
                        .collect();
                    k::dropout_forward(&input[..y.len()], &mask, y);
                    self.aux[v].mask = mask;
                } else {
                    y.copy_from_slice(&input[..y.len()]);
                    self.aux[v].mask.clear();
                }
            }
            Op::Activation(_) | Op::ReLU(_) => y.copy_from_slice(&input[..y.len()]),
            Op::BatchNormalization { epsilon, .. } => {
                let c = node.shape.channels();
                let rows = y.len() / c;
                let batch_stats = mode == Mode::Train && node.trainable;
                let aux = &mut self.aux[v];
                aux.bn_batch_stats = batch_stats;
                let [gamma, beta, mean, var] = &p[..] else {
                    return;
                };
                if batch_stats {
                    aux.bn_mean.resize(c, 0.0);
                    aux.bn_var.resize(c, 0.0);
                    k::batch_norm_forward_train(
                        rows,
                        c,
                        &input[..y.len()],
                        gamma,
                        beta,
                        epsilon,
                        y,
                        &mut aux.bn_mean,
                        &mut aux.bn_var,
                    );
                } else {
                    k::batch_norm_forward_infer(
                        rows,
                        c,
                        &input[..y.len()],
                        gamma,
                        beta,
                        mean,
                        var,
                        epsilon,
                        y,
                    );
                }
            }
            Op::ZeroPadding2D(pad) => {
                let (h, w, c) = graph.nodes[node.inputs[0]].shape.hwc().unwrap_or((1, 1, 1));
                for_batch(n, input, in_per, y, out_per, |k, xc, yc| {
                    k::zero_pad_forward(k, h, w, c, pad, xc, yc)
                });
            }
            Op::Add => {
                y.copy_from_slice(&input[..y.len()]);
                for &u in &node.inputs[1..] {
                    y.par_iter_mut()
                        .zip(&self.acts[u][..])
                        .for_each(|(y, a)| *y += a);
                }
            }
        }
        if let Some(act) = node.op.activation() {
            if keep_logits {
                self.logits.clear();
                self.logits.extend_from_slice(y);
            }
            k::activation_in_place(act, node.shape.channels(), y);
        }
    }

    /// Folds the batch statistics of the last training forward into the moving mean and
    /// variance of every BatchNormalization that used them (Keras's momentum rule).
    pub fn update_moving_statistics(&self, graph: &Graph, params: &mut ParamStore) {
        for (v, node) in graph.nodes.iter().enumerate() {
            let Op::BatchNormalization { momentum, .. } = node.op else {
                continue;
            };
            let aux = &self.aux[v];
            if !aux.bn_batch_stats {
                continue;
            }
            if let [_, _, mean, var] = &mut params.tensors[v][..] {
                for i in 0..mean.len() {
                    mean[i] = momentum * mean[i] + (1.0 - momentum) * aux.bn_mean[i];
                    var[i] = momentum * var[i] + (1.0 - momentum) * aux.bn_var[i];
                }
            }
        }
    }

    /// Back-propagates `d_out` (the gradient of the mean loss with respect to the output, or to
    /// its pre-activation under [`OutputLink::Logits`]) through what `plan` asks for. Parameter
    /// gradients of layers without weight gradients are left zero.
    pub fn backward(&mut self, graph: &Graph, params: &ParamStore, plan: &Plan, d_out: &[f32]) {
        let n = self.batch;
        self.param_grads.fill_zero();
        for (v, node) in graph.nodes.iter().enumerate() {
            let g = &mut self.grads[v];
            let len = if plan.out_grad[v] {
                n * node.shape.elems()
            } else {
                0
            };
            if g.len() != len {
                g.clear();
                g.resize(len, 0.0);
            }
            self.given[v] = false;
        }
        if !plan.out_grad[graph.output] {
            return;
        }
        self.grads[graph.output].copy_from_slice(&d_out[..n * graph.output_shape().elems()]);
        self.given[graph.output] = true;
        let compiled = self
            .compiled(graph, n, Mode::Train)
            .filter(|c| c.mode == Mode::Train);
        for v in (1..graph.nodes.len()).rev() {
            if let Some(c) = &compiled
                && let Some(head) = c.in_group[v]
            {
                if let Some(group) = c.groups[head]
                    .as_ref()
                    .filter(|g| head == v && plan.out_grad[g.tail])
                {
                    let t = std::time::Instant::now();
                    self.settle(group.tail);
                    self.jit_backward(graph, params, plan, group);
                    self.record(v, 1, t);
                }
                continue;
            }
            if plan.out_grad[v] {
                let t = std::time::Instant::now();
                self.settle(v);
                let pool = compiled
                    .as_ref()
                    .and_then(|c| c.pools[v].as_ref())
                    .filter(|p| p.backward.is_some());
                match pool {
                    Some(p) => self.jit_pool_backward(graph, plan, v, p),
                    None => self.backward_node(graph, params, plan, v),
                }
                self.record(v, 1, t);
            }
        }
    }

    /// Zeroes node `v`'s gradient if no consumer gave it one this step, before it is read.
    fn settle(&mut self, v: NodeId) {
        if !self.given[v] {
            self.grads[v].fill(0.0);
            self.given[v] = true;
        }
    }

    /// Adds `dx` into the gradient of input `u`, or moves it there when it is the first.
    fn give(&mut self, u: NodeId, dx: Vec<f32>) {
        if !self.given[u] {
            self.given[u] = true;
            self.grads[u] = dx;
        } else {
            self.grads[u]
                .par_iter_mut()
                .zip(&dx[..])
                .for_each(|(g, d)| *g += d);
        }
    }

    fn backward_node(&mut self, graph: &Graph, params: &ParamStore, plan: &Plan, v: NodeId) {
        let node = &graph.nodes[v];
        let n = self.batch;
        let out_per = node.shape.elems();
        let dy = std::mem::take(&mut self.grads[v]);
        // Through the activation, from the output (the loss already did it for the logits).
        let at_logits = v == graph.output && self.link == OutputLink::Logits;
        let through_act = node
            .op
            .activation()
            .filter(|&a| !at_logits && a != Activation::Linear)
            .map(|act| {
                let mut d = vec![0.0; dy.len()];
                k::activation_backward(act, node.shape.channels(), &self.acts[v], &dy, &mut d);
                d
            });
        let dz: &[f32] = through_act.as_deref().unwrap_or(&dy);
        let Some(&u) = node.inputs.first() else {
            self.grads[v] = dy;
            return;
        };
        let in_per = graph.nodes[u].shape.elems();
        let want_dx = plan.out_grad[u];
        let x = &self.acts[u];
        let p = &params.tensors[v];
        let mut dx = if want_dx {
            vec![0.0; n * in_per]
        } else {
            Vec::new()
        };
        match node.op {
            Op::Input => {}
            Op::Conv2D { use_bias, .. } => {
                let geom = conv_geom(graph, v, n);
                let im2col = self.backend == Backend::Im2col;
                if plan.weight_grad[v] {
                    let grads = &mut self.param_grads.tensors[v];
                    if im2col {
                        im2col::conv_backward_weight(&geom, x, dz, &mut grads[0]);
                    } else {
                        sum_over_batch(
                            n,
                            x,
                            in_per,
                            dz,
                            out_per,
                            &mut grads[0],
                            |k, xc, dc, dw| {
                                k::conv2d_backward_weight(&geom.with_batch(k), xc, dc, dw)
                            },
                        );
                    }
                    if use_bias {
                        k::bias_backward(dz, node.shape.channels(), &mut grads[1]);
                    }
                }
                if want_dx {
                    if im2col {
                        im2col::conv_backward_input(&geom, dz, &p[0], &mut dx);
                    } else {
                        for_batch(n, dz, out_per, &mut dx, in_per, |k, dc, xc| {
                            k::conv2d_backward_input(&geom.with_batch(k), dc, &p[0], xc)
                        });
                    }
                }
            }
            Op::DepthwiseConv2D {
                depth_multiplier: m,
                use_bias,
                ..
            } => {
                let geom = conv_geom(graph, v, n);
                if plan.weight_grad[v] {
                    let grads = &mut self.param_grads.tensors[v];
                    sum_over_batch(n, x, in_per, dz, out_per, &mut grads[0], |k, xc, dc, dw| {
                        k::depthwise_backward_weight(&geom.with_batch(k), m, xc, dc, dw)
                    });
                    if use_bias {
                        k::bias_backward(dz, node.shape.channels(), &mut grads[1]);
                    }
                }
                if want_dx {
                    for_batch(n, dz, out_per, &mut dx, in_per, |k, dc, xc| {
                        k::depthwise_backward_input(&geom.with_batch(k), m, dc, &p[0], xc)
                    });
                }
            }
            Op::Dense {
                units, use_bias, ..
            } => {
                let im2col = self.backend == Backend::Im2col;
                if plan.weight_grad[v] {
                    let grads = &mut self.param_grads.tensors[v];
                    if im2col {
                        im2col::dense_backward_weight(n, in_per, units, x, dz, &mut grads[0]);
                    } else {
                        sum_over_batch(
                            n,
                            x,
                            in_per,
                            dz,
                            out_per,
                            &mut grads[0],
                            |k, xc, dc, dw| k::dense_backward_weight(k, in_per, units, xc, dc, dw),
                        );
                    }
                    if use_bias {
                        k::bias_backward(dz, units, &mut grads[1]);
                    }
                }
                if want_dx {
                    if im2col {
                        im2col::dense_backward_input(n, in_per, units, dz, &p[0], &mut dx);
                    } else {
                        for_batch(n, dz, out_per, &mut dx, in_per, |k, dc, xc| {
                            k::dense_backward_input(k, in_per, units, dc, &p[0], xc)
                        });
                    }
                }
            }
            Op::MaxPooling2D { .. } => {
                if want_dx {
                    let g = pool_geom(graph, v, n);
                    let chunk = n.div_ceil(rayon::current_num_threads()).max(1);
                    let argmax = &self.aux[v].argmax;
                    dx.par_chunks_mut(chunk * in_per)
                        .zip(dz.par_chunks(chunk * out_per))
                        .zip(argmax.par_chunks(chunk * out_per))
                        .for_each(|((xc, dc), ac)| {
                            k::max_pool_backward(&g.with_batch(dc.len() / out_per), ac, dc, xc)
                        });
                }
            }
            Op::AveragePooling2D { .. } => {
                if want_dx {
                    let g = pool_geom(graph, v, n);
                    for_batch(n, dz, out_per, &mut dx, in_per, |k, dc, xc| {
                        k::avg_pool_backward(&g.with_batch(k), dc, xc)
                    });
                }
            }
            Op::GlobalAveragePooling2D => {
                if want_dx {
                    let c = out_per;
                    for_batch(n, dz, out_per, &mut dx, in_per, |k, dc, xc| {
                        k::global_avg_pool_backward(k, in_per / c, c, dc, xc)
                    });
                }
            }
            Op::Flatten | Op::Activation(_) | Op::ReLU(_) => {
                if want_dx {
                    dx.copy_from_slice(dz);
                }
            }
            Op::Dropout { .. } => {
                if want_dx {
                    let mask = &self.aux[v].mask;
                    if mask.is_empty() {
                        dx.copy_from_slice(dz);
                    } else {
                        k::dropout_forward(dz, mask, &mut dx);
                    }
                }
            }
            Op::BatchNormalization { epsilon, .. } => {
                let c = node.shape.channels();
                let rows = dz.len() / c;
                let aux = &self.aux[v];
                let [gamma, _, mean, var] = &p[..] else {
                    return;
                };
                if aux.bn_batch_stats {
                    let mut dgamma = vec![0.0; c];
                    let mut dbeta = vec![0.0; c];
                    let mut d = if want_dx {
                        std::mem::take(&mut dx)
                    } else {
                        vec![0.0; dz.len()]
                    };
                    k::batch_norm_backward(
                        rows,
                        c,
                        x,
                        dz,
                        gamma,
                        &aux.bn_mean,
                        &aux.bn_var,
                        epsilon,
                        &mut d,
                        &mut dgamma,
                        &mut dbeta,
                    );
                    if want_dx {
                        dx = d;
                    }
                    if plan.weight_grad[v] {
                        self.param_grads.tensors[v][0] = dgamma;
                        self.param_grads.tensors[v][1] = dbeta;
                    }
                } else {
                    if plan.weight_grad[v] {
                        // Inference-mode normalisation with trainable gamma/beta (not reached
                        // in Keras, where a trainable BN trains on batch statistics).
                        let (dgamma, dbeta) =
                            bn_infer_param_grads(rows, c, x, dz, mean, var, epsilon);
                        self.param_grads.tensors[v][0] = dgamma;
                        self.param_grads.tensors[v][1] = dbeta;
                    }
                    if want_dx {
                        k::batch_norm_backward_infer(rows, c, dz, gamma, var, epsilon, &mut dx);
                    }
                }
            }
            Op::ZeroPadding2D(pad) => {
                if want_dx {
                    let (h, w, c) = graph.nodes[u].shape.hwc().unwrap_or((1, 1, 1));
                    for_batch(n, dz, out_per, &mut dx, in_per, |k, dc, xc| {
                        k::zero_pad_backward(k, h, w, c, pad, dc, xc)
                    });
                }
            }
            Op::Add => {
                let dz = dz.to_vec();
                for &w in &node.inputs {
                    if plan.out_grad[w] {
                        self.give(w, dz.clone());
                    }
                }
                self.grads[v] = dy;
                return;
            }
        }
        if want_dx {
            self.give(u, dx);
        }
        self.grads[v] = dy;
    }
}

impl Session {
    /// Runs a compiled group's forward kernel, writing the group's last output.
    fn jit_forward(&mut self, graph: &Graph, params: &ParamStore, g: &GroupKernels, mode: Mode) {
        let n = self.batch;
        let head = &graph.nodes[g.head];
        let p = &params.tensors[g.head];
        let tail_len = n * graph.nodes[g.tail].shape.elems();
        let mut y = std::mem::take(&mut self.acts[g.tail]);
        y.resize(tail_len, 0.0);
        let mut argmax = std::mem::take(&mut self.aux[g.tail].argmax);
        argmax.resize(
            if g.forward_buffers.contains(&"argmax") {
                tail_len
            } else {
                0
            },
            0,
        );
        let mut dead = vec![
            0u32;
            if g.forward_buffers.contains(&"dead") {
                g.forward.items()
            } else {
                0
            }
        ];
        let (scale, shift) =
            g.bn.map_or_else(Default::default, |b| folded_batch_norm(graph, params, b));
        let mut packed = std::mem::take(&mut self.packed[g.head]);
        if let Some((geom, layout)) = &g.packed_weights {
            layout.prepare(geom, &p[0], &mut packed);
        }
        {
            let x = &self.acts[head.inputs[0]];
            let residual = g.residual.map_or(&[][..], |r| &self.acts[r][..]);
            let mut y_buf = Some(&mut y[..]);
            let mut a_buf = Some(&mut argmax[..]);
            let mut d_buf = Some(&mut dead[..]);
            let mut bufs: Vec<Buf<'_>> = Vec::with_capacity(g.forward_buffers.len());
            for name in &g.forward_buffers {
                bufs.push(match *name {
                    "x" => Buf::F32(x),
                    "w" if g.packed_weights.is_some() => Buf::F32(&packed),
                    "w" => Buf::F32(&p[0]),
                    "bias" => Buf::F32(&p[1]),
                    "scale" => Buf::F32(&scale),
                    "shift" => Buf::F32(&shift),
                    "residual" => Buf::F32(residual),
                    "argmax" => Buf::U32Mut(a_buf.take().unwrap_or_default()),
                    // Each call gets its own (`Bound::with_call_scratch`).
                    "scratch" => Buf::F32(&[]),
                    "dead" => Buf::U32Mut(d_buf.take().unwrap_or_default()),
                    _ => Buf::F32Mut(y_buf.take().unwrap_or_default()),
                });
            }
            g.forward.run(&mut bufs);
        }
        self.packed[g.head] = packed;
        if g.deferred {
            if g.tail == graph.output && self.link == OutputLink::Logits {
                self.logits.clear();
                self.logits.extend_from_slice(&y);
            }
            k::activation_in_place(g.activation, graph.nodes[g.tail].shape.channels(), &mut y);
        }
        let relu = matches!(g.activation, Activation::ReLU | Activation::ReLU6);
        if mode == Mode::Train && relu && dead.is_empty() && g.max_pool.is_none() {
            // No count from the kernel (dense layers): the output is the activation itself.
            dead = vec![y.par_iter().filter(|&&v| v == 0.0).count() as u32];
        }
        if mode == Mode::Train && !dead.is_empty() {
            let zeros: u64 = dead.iter().map(|&d| u64::from(d)).sum();
            let owner = g
                .members
                .iter()
                .copied()
                .find(|&m| is_relu_family(graph.nodes[m].op.activation()))
                .unwrap_or(g.head);
            self.dead_fraction[owner] =
                Some((zeros as f64 / (n * g.computed).max(1) as f64).min(1.0) as f32);
        }
        self.acts[g.tail] = y;
        self.aux[g.tail].argmax = argmax;
    }

    /// Runs a standalone pooling layer's backward kernel (buffers `argmax` for a max-pool,
    /// `dy`, `dx`).
    fn jit_pool_backward(&mut self, graph: &Graph, plan: &Plan, v: NodeId, p: &PoolKernels) {
        let u = graph.nodes[v].inputs[0];
        let Some(k) = p.backward.as_ref().filter(|_| plan.out_grad[u]) else {
            return;
        };
        let len = self.batch * graph.nodes[u].shape.elems();
        let mut dx = vec![0.0; len];
        {
            let dy = &self.grads[v];
            let argmax = &self.aux[v].argmax;
            if !p.argmax {
                k.run(&mut [Buf::F32(dy), Buf::F32Mut(&mut dx)]);
            } else {
                k.run(&mut [Buf::U32(argmax), Buf::F32(dy), Buf::F32Mut(&mut dx)]);
            }
        }
        self.give(u, dx);
    }

    /// Runs a compiled group's backward kernels: `dz`, then weight, bias and input gradients.
    fn jit_backward(&mut self, graph: &Graph, params: &ParamStore, plan: &Plan, g: &GroupKernels) {
        let Some(b) = &g.backward else { return };
        let n = self.batch;
        let dy = std::mem::take(&mut self.grads[g.tail]);
        let at_logits = g.tail == graph.output && self.link == OutputLink::Logits;
        let dz_buf = std::mem::take(&mut self.dz[g.head]);
        let mut dz_owned = match &b.to_dz {
            Some(k) if !at_logits => {
                let mut dz = dz_buf;
                dz.resize(n * g.conv_out, 0.0);
                let y = &self.acts[g.tail];
                if g.max_pool.is_some() {
                    k.run(&mut [
                        Buf::U32(&self.aux[g.tail].argmax),
                        Buf::F32(y),
                        Buf::F32(&dy),
                        Buf::F32Mut(&mut dz),
                    ]);
                } else {
                    k.run(&mut [Buf::F32(y), Buf::F32(&dy), Buf::F32Mut(&mut dz)]);
                }
                Some(dz)
            }
            _ => None,
        };
        // z = conv · scale + shift + residual: the residual's gradient is dz as it is, the
        // convolution's is dz · scale (a frozen batch-norm's per-channel scale).
        if let Some(r) = g.residual.filter(|&r| plan.out_grad[r]) {
            let dz = dz_owned.as_deref().unwrap_or(&dy).to_vec();
            self.give(r, dz);
        }
        if let Some(b) = g.bn {
            let (scale, _) = folded_batch_norm(graph, params, b);
            let mut dz = dz_owned.take().unwrap_or_else(|| dy.clone());
            dz.par_chunks_mut(scale.len())
                .for_each(|px| px.iter_mut().zip(&scale).for_each(|(d, s)| *d *= s));
            dz_owned = Some(dz);
        }
        let dz: &[f32] = dz_owned.as_deref().unwrap_or(&dy);
        let u = graph.nodes[g.head].inputs[0];
        let x = &self.acts[u];
        let p = &params.tensors[g.head];
        if plan.weight_grad[g.head] {
            let grads = &mut self.param_grads.tensors[g.head];
            let (dw, rest) = grads.split_at_mut(1);
            match &b.weight {
                WeightGradKernels::Direct(k) => {
                    k.run(&mut [Buf::F32(x), Buf::F32(dz), Buf::F32Mut(&mut dw[0])]);
                }
                WeightGradKernels::Winograd { kernel, wg } => {
                    let partial = &mut self.winograd_partial;
                    partial.resize(wg.partial_len(), 0.0);
                    kernel.run(&mut [
                        Buf::F32(x),
                        Buf::F32(dz),
                        Buf::F32Mut(partial),
                        // Each call gets its own (`Bound::with_call_scratch`).
                        Buf::F32(&[]),
                    ]);
                    weight_grad::kernel_gradient(wg, partial, &mut dw[0]);
                }
            }
            if let (Some(k), Some(db)) = (&b.bias, rest.first_mut()) {
                k.run(&mut [Buf::F32(dz), Buf::F32Mut(db)]);
            }
        }
        if plan.out_grad[u] {
            let mut wt = std::mem::take(&mut self.wt[g.head]);
            if let Some(t) = &b.transpose {
                wt.resize(b.wt_len, 0.0);
                t.run(&mut [Buf::F32(&p[0]), Buf::F32Mut(&mut wt)]);
            } else if let Some(dx_geom) = &b.input_winograd {
                winograd::transform_input_gradient_weights(dx_geom, &p[0], &mut wt);
            }
            let len = n * graph.nodes[u].shape.elems();
            // The kernel overwrites every element: a sole consumer's gradient buffer (sized
            // by `backward`) is reused instead of allocating a zeroed one.
            let mut dx = if self.consumers[u] <= 1 {
                std::mem::take(&mut self.grads[u])
            } else {
                Vec::new()
            };
            dx.resize(len, 0.0);
            let w: &[f32] = if b.transpose.is_some() || b.input_winograd.is_some() {
                &wt
            } else {
                &p[0]
            };
            let mut bufs = vec![Buf::F32(dz), Buf::F32(w), Buf::F32Mut(&mut dx)];
            if b.input_winograd.is_some() {
                // Each call gets its own (`Bound::with_call_scratch`).
                bufs.push(Buf::F32(&[]));
            }
            b.input.run(&mut bufs);
            self.wt[g.head] = wt;
            self.give(u, dx);
        }
        if let Some(dz) = dz_owned {
            self.dz[g.head] = dz;
        }
        self.grads[g.tail] = dy;
    }
}

/// Inference batch normalisation as a per-channel affine map `y = x · scale + shift`, from
/// node `bn`'s gamma, beta and moving statistics (empty for anything else).
fn folded_batch_norm(graph: &Graph, params: &ParamStore, bn: NodeId) -> (Vec<f32>, Vec<f32>) {
    match (&graph.nodes[bn].op, &params.tensors[bn][..]) {
        (Op::BatchNormalization { epsilon, .. }, [gamma, beta, mean, var]) => {
            let scale: Vec<f32> = gamma
                .iter()
                .zip(var)
                .map(|(gm, v)| gm / (v + epsilon).sqrt())
                .collect();
            let shift = beta
                .iter()
                .zip(mean)
                .zip(&scale)
                .map(|((b, m), s)| b - m * s)
                .collect();
            (scale, shift)
        }
        _ => (Vec::new(), Vec::new()),
    }
}

/// Gamma and beta gradients of inference-mode batch normalisation.
fn bn_infer_param_grads(
    rows: usize,
    c: usize,
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let mut dgamma = vec![0.0; c];
    let mut dbeta = vec![0.0; c];
    for r in 0..rows {
        for i in 0..c {
            let xhat = (x[r * c + i] - mean[i]) / (var[i] + eps).sqrt();
            dgamma[i] += dy[r * c + i] * xhat;
            dbeta[i] += dy[r * c + i];
        }
    }
    (dgamma, dbeta)
}
