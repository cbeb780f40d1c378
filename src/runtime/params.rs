//! Parameter storage: one `Vec<f32>` per parameter of every node, in the graph's order, named
//! `"{layer}/{param}"` (Keras's weight names; conv kernels HWIO).

use crate::ir::{Graph, NodeId, ParamInit};

use super::Rng;

/// The values (or gradients, or optimizer slots) of every parameter of a graph:
/// `tensors[node][k]` belongs to `graph.nodes[node].params[k]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamStore {
    pub tensors: Vec<Vec<Vec<f32>>>,
}

impl ParamStore {
    /// Zero-filled tensors shaped like the graph's parameters.
    pub fn zeros_like(graph: &Graph) -> Self {
        ParamStore {
            tensors: graph
                .nodes
                .iter()
                .map(|n| n.params.iter().map(|p| vec![0.0; p.elems()]).collect())
                .collect(),
        }
    }

    /// Keras's initial values: Glorot-uniform kernels, zero biases and betas, unit gammas and
    /// moving variances. Deterministic in `seed`.
    pub fn init(graph: &Graph, seed: u64) -> Self {
        let mut rng = Rng::derived(seed, 1);
        let tensors = graph
            .nodes
            .iter()
            .map(|n| {
                n.params
                    .iter()
                    .map(|p| match p.init {
                        ParamInit::Zeros => vec![0.0; p.elems()],
                        ParamInit::Ones => vec![1.0; p.elems()],
                        ParamInit::GlorotUniform { fan_in, fan_out } => {
                            let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
                            (0..p.elems()).map(|_| rng.uniform(-limit, limit)).collect()
                        }
                    })
                    .collect()
            })
            .collect();
        ParamStore { tensors }
    }

    /// `(node, k, "layer/param")` for every parameter, in order.
    pub fn names(graph: &Graph) -> Vec<(NodeId, usize, String)> {
        graph
            .nodes
            .iter()
            .enumerate()
            .flat_map(|(id, n)| {
                n.params
                    .iter()
                    .enumerate()
                    .map(move |(k, p)| (id, k, format!("{}/{}", n.name, p.name)))
            })
            .collect()
    }

    /// Fills every tensor with zeros, keeping the allocation.
    pub fn fill_zero(&mut self) {
        self.tensors.iter_mut().flatten().for_each(|t| t.fill(0.0));
    }

    /// L2 norm of one node's tensors together.
    pub fn node_norm(&self, node: NodeId) -> f32 {
        self.tensors[node]
            .iter()
            .flatten()
            .map(|v| v * v)
            .sum::<f32>()
            .sqrt()
    }
}
