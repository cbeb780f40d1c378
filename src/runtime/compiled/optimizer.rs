//! The optimizer step as JIT kernels: one kernel per weight tensor of the graph, specialised
//! on its length and on the hyper-parameters a run does not change (see
//! `cnntui_kernels::jit::optimizer`). The learning rate — and Adam's step-dependent `alpha` —
//! is passed at every call, so changing it never recompiles.
//!
//! The update rules, their operation order and the state slots are the reference optimizer's
//! (`crate::runtime::Optimizer`), which runs instead when the JIT cannot start.

use cnntui_kernels::jit::optimizer::{adam_alpha, emit_adam, emit_rmsprop, emit_sgd};
use cnntui_kernels::jit::{Bound, Buf, Jit, JitError, Kernel};

use crate::ir::{Graph, ParamKind};
use crate::model::OptimizerSpec;

/// Compiled update kernels for every weight tensor of one graph and one optimizer spec.
#[derive(Debug)]
pub struct CompiledOptimizer {
    /// The spec the kernels were compiled for (the learning rate excepted).
    pub spec: OptimizerSpec,
    /// `steps[node][param]`: the kernel of each weight tensor (`None` for moving statistics).
    steps: Vec<Vec<Option<Bound>>>,
}

impl CompiledOptimizer {
    /// Compiles an update kernel for each weight tensor of `graph`.
    ///
    /// # Errors
    /// [`JitError`] when the JIT cannot start or Cranelift fails.
    pub fn compile(spec: OptimizerSpec, graph: &Graph) -> Result<Self, JitError> {
        let mut jit = Jit::new()?;
        let mut lens = Vec::new();
        for (v, node) in graph.nodes.iter().enumerate() {
            for (i, p) in node.params.iter().enumerate() {
                let len = p.elems();
                if p.kind != ParamKind::Weight || len == 0 {
                    continue;
                }
                let name = format!("{}_{i}_update", node.name);
                let items = match spec {
                    OptimizerSpec::SGD {
                        momentum, nesterov, ..
                    } => emit_sgd(&mut jit, &name, len, momentum as f32, nesterov)?,
                    OptimizerSpec::RMSprop {
                        rho,
                        momentum,
                        epsilon,
                        ..
                    } => emit_rmsprop(
                        &mut jit,
                        &name,
                        len,
                        rho as f32,
                        momentum as f32,
                        epsilon as f32,
                    )?,
                    OptimizerSpec::Adam {
                        beta_1,
                        beta_2,
                        epsilon,
                        ..
                    } => emit_adam(
                        &mut jit,
                        &name,
                        len,
                        beta_1 as f32,
                        beta_2 as f32,
                        epsilon as f32,
                    )?,
                };
                lens.push((v, i, len, items));
            }
        }
        let kernels: Vec<Kernel> = jit.finish()?;
        let mut steps: Vec<Vec<Option<Bound>>> = graph
            .nodes
            .iter()
            .map(|n| n.params.iter().map(|_| None).collect())
            .collect();
        let slots = match spec {
            OptimizerSpec::SGD { momentum, .. } => usize::from(momentum != 0.0),
            OptimizerSpec::RMSprop { momentum, .. } => 1 + usize::from(momentum > 0.0),
            OptimizerSpec::Adam { .. } => 2,
        };
        for ((v, i, len, items), k) in lens.into_iter().zip(kernels) {
            // w, g, the state slots, then the scalar buffer.
            let mut buf_lens = vec![len; 2 + slots];
            buf_lens.push(1);
            steps[v][i] = Some(k.bind(buf_lens, items));
        }
        Ok(CompiledOptimizer { spec, steps })
    }

    /// The number of graph nodes the kernels were compiled for.
    pub fn nodes(&self) -> usize {
        self.steps.len()
    }

    /// Whether there is a kernel for parameter `i` of node `v`.
    pub fn has(&self, v: usize, i: usize) -> bool {
        self.steps
            .get(v)
            .and_then(|s| s.get(i))
            .is_some_and(Option::is_some)
    }

    /// Updates weight tensor `i` of node `v` in place from its gradient `g`, with the state
    /// `slots` in the reference optimizer's order, at learning rate `lr` and (Adam) step `t`.
    /// Does nothing when there is no kernel for the tensor.
    ///
    /// # Panics
    /// When a buffer is shorter than the tensor (a bug in the caller).
    pub fn step(
        &self,
        (v, i): (usize, usize),
        w: &mut [f32],
        g: &[f32],
        slots: Vec<&mut [f32]>,
        lr: f32,
        t: u64,
    ) {
        let Some(Some(k)) = self.steps.get(v).and_then(|s| s.get(i)) else {
            return;
        };
        let scalar = match self.spec {
            OptimizerSpec::Adam { beta_1, beta_2, .. } => {
                adam_alpha(lr, beta_1 as f32, beta_2 as f32, t)
            }
            _ => lr,
        };
        let scalars = [scalar];
        let mut bufs = vec![Buf::F32Mut(w), Buf::F32(g)];
        bufs.extend(slots.into_iter().map(Buf::F32Mut));
        bufs.push(Buf::F32(&scalars));
        // A few thousand elements at most in a small model; a large tensor is split.
        if k.items() < 1 << 14 {
            k.run_here(&mut bufs);
        } else {
            k.run(&mut bufs);
        }
    }
}
