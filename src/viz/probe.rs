//! A [`Probe`]: a copy of a model set up to answer one kind of question — "what is this
//! layer's output for this input?" and "what is the gradient of this scalar with respect to
//! that tensor?" — with the same kernels training uses, on either backend.
//!
//! The copy is frozen (so a BatchNormalization layer uses its moving statistics, as Keras runs
//! frozen layers) and its dropout rates are zero; the forward pass then runs in training mode,
//! which makes the backward kernels available, yet computes exactly the inference function.
//! A probe may be cut after a layer (that layer becomes the output), and every tensor it is
//! asked about is requested from the fusion pass, so the JIT keeps it materialised.

use cnntui_kernels::reference::Activation;

use crate::ir::{Graph, NodeId, Op};
use crate::passes;
use crate::runtime::{Backend, Mode, OutputLink, ParamStore, Plan, Rng, Session};

use super::VizError;

/// Where a probe ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    pub node: NodeId,
    /// End at the node's pre-activation (for a layer that fuses its activation).
    pub pre_activation: bool,
}

/// A frozen, dropout-free copy of a model with its session.
pub struct Probe {
    pub graph: Graph,
    params: ParamStore,
    session: Session,
    plan: Plan,
}

impl Probe {
    /// Prepares `graph` (un-optimised, as `ir::load` returns it) with `params` for questions
    /// about the nodes in `watch`. With `cut_after`, the graph ends at that node and gradients
    /// start from its output; otherwise they start from the output's logits.
    /// [`Cut::pre_activation`] makes a cut convolution's output its pre-activation (the
    /// activation it fuses is dropped), so a filter that a ReLU silences still has a gradient.
    ///
    /// # Errors
    /// [`VizError::Prepare`] if the fusion pass rejects the graph.
    pub fn new(
        graph: &Graph,
        params: &ParamStore,
        backend: Backend,
        watch: &[NodeId],
        cut_after: Option<Cut>,
    ) -> Result<Probe, VizError> {
        let mut g = graph.clone();
        let mut params = params.clone();
        if let Some(cut) = cut_after {
            let last = cut.node;
            // Nodes are in topological order, so everything `last` reads comes before it.
            g.nodes.truncate(last + 1);
            params.tensors.truncate(last + 1);
            g.output = last;
            if cut.pre_activation
                && let Op::Conv2D { activation, .. }
                | Op::DepthwiseConv2D { activation, .. }
                | Op::Dense { activation, .. } = &mut g.nodes[last].op
            {
                *activation = Activation::Linear;
            }
        }
        for node in &mut g.nodes {
            node.trainable = false;
            if let Op::Dropout { rate } = &mut node.op {
                *rate = 0.0;
            }
        }
        g.groups.clear();
        let target = passes::Target {
            training: true,
            requested: watch.to_vec(),
        };
        passes::optimize(&mut g, &target).map_err(|e| VizError::Prepare(e.to_string()))?;
        let link = if cut_after.is_some() {
            OutputLink::Output
        } else {
            OutputLink::Logits
        };
        let session = Session::new(&g, link).with_backend(backend);
        let plan = Plan::new(&g, watch);
        Ok(Probe {
            graph: g,
            params,
            session,
            plan,
        })
    }

    /// Runs `n` inputs (`[n, input shape]`) forward.
    pub fn forward(&mut self, x: &[f32], n: usize) {
        self.session.forward(
            &self.graph,
            &self.params,
            x,
            n,
            Mode::Train,
            &mut Rng::new(0),
        );
    }

    /// Node `v`'s output from the last forward.
    pub fn activation(&self, v: NodeId) -> &[f32] {
        self.session.activation(v)
    }

    /// The output's logits (pre-activation) from the last forward; for a cut probe, its output.
    pub fn scores(&self) -> &[f32] {
        if self.session.logits().is_empty() {
            self.session.output(&self.graph)
        } else {
            self.session.logits()
        }
    }

    /// Back-propagates `d_out` (with respect to the logits, or to a cut probe's output); the
    /// gradients of the watched nodes are then available from [`Probe::gradient`].
    pub fn backward(&mut self, d_out: &[f32]) {
        self.session
            .backward(&self.graph, &self.params, &self.plan, d_out);
    }

    /// The gradient with respect to watched node `v` after the last backward.
    pub fn gradient(&self, v: NodeId) -> &[f32] {
        self.session.gradient(v)
    }

    /// Warnings from the JIT (layers that fell back to the reference kernels).
    pub fn take_warnings(&mut self) -> Vec<String> {
        self.session.take_warnings()
    }
}
