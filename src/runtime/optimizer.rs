//! Optimizers with Keras 3's update rules and defaults: SGD (momentum, Nesterov), RMSprop,
//! Adam. State slots are kept per parameter and saved in checkpoints as
//! `optimizer/{layer}/{param}/{slot}`.

use std::sync::Arc;

use cnntui_kernels::reference as k;

use super::ParamStore;
use super::compiled::optimizer::CompiledOptimizer;
use crate::ir::{Graph, ParamKind};
use crate::model::OptimizerSpec;

/// An optimizer and its state.
#[derive(Clone, Debug)]
pub struct Optimizer {
    pub spec: OptimizerSpec,
    /// The current learning rate (changed by `Command::SetLearningRate`).
    pub learning_rate: f64,
    /// Steps taken (Adam's bias correction counts them, 1-based).
    pub step: u64,
    /// Named state slots, each shaped like the parameters.
    pub slots: Vec<(&'static str, ParamStore)>,
    /// JIT update kernels ([`Optimizer::use_jit`]); `None` runs the reference step.
    jit: Option<Arc<CompiledOptimizer>>,
}

/// `spec` with the learning rate zeroed: what the compiled kernels depend on.
fn hyper(spec: OptimizerSpec) -> OptimizerSpec {
    match spec {
        OptimizerSpec::SGD {
            momentum, nesterov, ..
        } => OptimizerSpec::SGD {
            learning_rate: 0.0,
            momentum,
            nesterov,
        },
        OptimizerSpec::RMSprop {
            rho,
            momentum,
            epsilon,
            ..
        } => OptimizerSpec::RMSprop {
            learning_rate: 0.0,
            rho,
            momentum,
            epsilon,
        },
        OptimizerSpec::Adam {
            beta_1,
            beta_2,
            epsilon,
            ..
        } => OptimizerSpec::Adam {
            learning_rate: 0.0,
            beta_1,
            beta_2,
            epsilon,
        },
    }
}

impl Optimizer {
    pub fn new(spec: OptimizerSpec, graph: &Graph) -> Self {
        let names: &[&'static str] = match spec {
            OptimizerSpec::SGD { momentum, .. } if momentum > 0.0 => &["momentum"],
            OptimizerSpec::SGD { .. } => &[],
            OptimizerSpec::RMSprop { momentum, .. } if momentum > 0.0 => &["velocity", "momentum"],
            OptimizerSpec::RMSprop { .. } => &["velocity"],
            OptimizerSpec::Adam { .. } => &["m", "v"],
        };
        Optimizer {
            spec,
            learning_rate: spec.learning_rate(),
            step: 0,
            slots: names
                .iter()
                .map(|&n| (n, ParamStore::zeros_like(graph)))
                .collect(),
            jit: None,
        }
    }

    /// Runs the updates of `graph`'s weights on JIT kernels from now on (the same rules, in
    /// the same order, as the reference step). Returns why not when the JIT cannot compile
    /// them; the reference step then keeps running.
    pub fn use_jit(&mut self, graph: &Graph) -> Result<(), String> {
        match CompiledOptimizer::compile(hyper(self.spec), graph) {
            Ok(c) => {
                self.jit = Some(Arc::new(c));
                Ok(())
            }
            Err(e) => {
                self.jit = None;
                Err(e.to_string())
            }
        }
    }

    /// The optimizer's Keras class name.
    pub fn name(&self) -> &'static str {
        match self.spec {
            OptimizerSpec::SGD { .. } => "SGD",
            OptimizerSpec::RMSprop { .. } => "RMSprop",
            OptimizerSpec::Adam { .. } => "Adam",
        }
    }

    /// Applies one update to the weights of the layers in `layers` (trainable ones) from
    /// `grads`. Moving statistics are never touched.
    pub fn apply(
        &mut self,
        graph: &Graph,
        params: &mut ParamStore,
        grads: &ParamStore,
        layers: &[bool],
    ) {
        self.step += 1;
        let lr = self.learning_rate as f32;
        let t = self.step;
        // Kernels compiled for other hyper-parameters (or another graph) are not used.
        let jit = self
            .jit
            .as_ref()
            .filter(|j| j.spec == hyper(self.spec) && j.nodes() == graph.nodes.len());
        for (v, node) in graph.nodes.iter().enumerate() {
            if !layers[v] {
                continue;
            }
            for (i, p) in node.params.iter().enumerate() {
                if p.kind != ParamKind::Weight {
                    continue;
                }
                let w = &mut params.tensors[v][i];
                let g = &grads.tensors[v][i];
                if let Some(j) = jit.filter(|j| j.has(v, i)) {
                    let slots = self
                        .slots
                        .iter_mut()
                        .map(|(_, s)| &mut s.tensors[v][i][..])
                        .collect();
                    j.step((v, i), w, g, slots, lr, t);
                    continue;
                }
                let mut slot = self.slots.iter_mut().map(|(_, s)| &mut s.tensors[v][i]);
                match self.spec {
                    OptimizerSpec::SGD {
                        momentum, nesterov, ..
                    } => {
                        k::sgd_step(
                            w,
                            g,
                            slot.next().map(|s| &mut s[..]),
                            lr,
                            momentum as f32,
                            nesterov,
                        );
                    }
                    OptimizerSpec::RMSprop {
                        rho,
                        momentum,
                        epsilon,
                        ..
                    } => {
                        let velocity = slot.next().map(|s| &mut s[..]).unwrap_or(&mut []);
                        k::rmsprop_step(
                            w,
                            g,
                            velocity,
                            slot.next().map(|s| &mut s[..]),
                            lr,
                            rho as f32,
                            momentum as f32,
                            epsilon as f32,
                        );
                    }
                    OptimizerSpec::Adam {
                        beta_1,
                        beta_2,
                        epsilon,
                        ..
                    } => {
                        let (Some(m), Some(vv)) = (slot.next(), slot.next()) else {
                            continue;
                        };
                        k::adam_step(
                            w,
                            g,
                            m,
                            vv,
                            lr,
                            beta_1 as f32,
                            beta_2 as f32,
                            epsilon as f32,
                            t,
                        );
                    }
                }
            }
        }
    }
}
