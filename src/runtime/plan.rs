//! The plan: what a training step or a gradient request must compute.
//!
//! Frozen layers get no weight gradient, and nothing below the lowest layer that needs one
//! computes an input gradient — unless the caller requests the gradient of the input or of a
//! named activation (visualisation needs it whatever is trainable). Changing which layers are
//! trainable only re-plans; it never touches the parameters.

use crate::ir::{Graph, NodeId, Op};

/// What the backward pass computes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `out_grad[v]`: the gradient of the loss with respect to node `v`'s output is needed
    /// (for `v`'s own weight gradient, a requested gradient, or to pass on to an input that
    /// needs one).
    pub out_grad: Vec<bool>,
    /// `weight_grad[v]`: node `v` gets weight gradients (it is trainable and has weights).
    pub weight_grad: Vec<bool>,
    /// Nodes whose output gradient the caller asked for (the input is node 0).
    pub requested: Vec<NodeId>,
}

impl Plan {
    /// Plans backward for `graph`'s current trainable set plus `requested` gradients.
    pub fn new(graph: &Graph, requested: &[NodeId]) -> Self {
        let n = graph.nodes.len();
        let weight_grad: Vec<bool> = graph
            .nodes
            .iter()
            .map(|node| node.has_trainable_weights())
            .collect();
        let mut out_grad = vec![false; n];
        for (v, node) in graph.nodes.iter().enumerate() {
            let passes_on =
                node.inputs.iter().any(|&u| out_grad[u]) && !matches!(node.op, Op::Input);
            out_grad[v] = weight_grad[v] || requested.contains(&v) || passes_on;
        }
        Plan {
            out_grad,
            weight_grad,
            requested: requested.to_vec(),
        }
    }

    /// Whether backward has anything to do at all.
    pub fn any(&self) -> bool {
        self.out_grad.iter().any(|&b| b)
    }

    /// How many layers get weight gradients.
    pub fn trained_layers(&self) -> usize {
        self.weight_grad.iter().filter(|&&b| b).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir;
    use std::path::Path;

    fn mnist() -> Graph {
        ir::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/mnist.ron"
        )))
        .expect("mnist.ron lowers")
    }

    #[test]
    fn frozen_bottom_layers_get_no_gradients() {
        let mut g = mnist();
        g.freeze_up_to("max_pooling2d_1");
        let p = Plan::new(&g, &[]);
        let conv2 = g.node_by_name("conv2d_1").unwrap();
        let conv3 = g.node_by_name("conv2d_2").unwrap();
        assert!(!p.out_grad[conv2] && !p.weight_grad[conv2]);
        assert!(p.weight_grad[conv3] && p.out_grad[conv3]);
        assert!(!p.out_grad[0]);
    }

    #[test]
    fn a_requested_input_gradient_flows_through_frozen_layers() {
        let mut g = mnist();
        g.freeze_up_to("dense_1");
        assert!(!Plan::new(&g, &[]).any());
        let p = Plan::new(&g, &[0]);
        assert!(p.out_grad.iter().all(|&b| b));
        assert_eq!(p.trained_layers(), 0);
    }
}
