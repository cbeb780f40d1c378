//! The graph: nodes in topological order, node 0 the input, each with its inferred output
//! shape (batch excluded) and its parameters.

use std::fmt;

use super::Op;

/// Index of a node in [`Graph::nodes`].
pub type NodeId = usize;

/// A shape without the batch axis: `[h, w, c]` or `[features]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    pub fn elems(&self) -> usize {
        self.0.iter().product()
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// `(h, w, c)` of a 3-D shape.
    pub fn hwc(&self) -> Option<(usize, usize, usize)> {
        match self.0[..] {
            [h, w, c] => Some((h, w, c)),
            _ => None,
        }
    }

    /// The last axis (channels, or features).
    pub fn channels(&self) -> usize {
        self.0.last().copied().unwrap_or(1)
    }

    /// Keras's JSON form with the batch as `null`: `[null, 26, 26, 32]`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = vec![serde_json::Value::Null];
        v.extend(self.0.iter().map(|&d| serde_json::Value::from(d)));
        serde_json::Value::Array(v)
    }
}

impl fmt::Display for Shape {
    /// Keras's printed form with the batch as `None`: `(None, 26, 26, 32)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(None")?;
        for d in &self.0 {
            write!(f, ", {d}")?;
        }
        write!(f, ")")
    }
}

/// Whether a parameter is learned by gradient descent or is a running statistic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Learned when its layer is trainable.
    Weight,
    /// BatchNormalization's moving mean and variance: never trainable (Keras).
    MovingStat,
}

/// How a parameter starts (Keras defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamInit {
    GlorotUniform { fan_in: usize, fan_out: usize },
    Zeros,
    Ones,
}

/// One parameter tensor of a layer; stored under `"{layer}/{name}"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Keras's weight name: `kernel`, `bias`, `depthwise_kernel`, `gamma`, `beta`,
    /// `moving_mean`, `moving_variance`.
    pub name: &'static str,
    /// Keras layout: conv kernels HWIO, depthwise `[k_h, k_w, c_in, multiplier]`, dense
    /// `[in, out]`.
    pub shape: Vec<usize>,
    pub kind: ParamKind,
    pub init: ParamInit,
}

impl Param {
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<NodeId>,
    /// Output shape, batch excluded.
    pub shape: Shape,
    /// Keras `layer.trainable`: a frozen layer's weights are not updated, and a frozen
    /// BatchNormalization runs in inference mode.
    pub trainable: bool,
    pub params: Vec<Param>,
}

impl Node {
    pub fn param_count(&self) -> usize {
        self.params.iter().map(Param::elems).sum()
    }

    /// Parameters that gradient descent updates: weights of a trainable layer.
    pub fn trainable_param_count(&self) -> usize {
        if !self.trainable {
            return 0;
        }
        self.params
            .iter()
            .filter(|p| p.kind == ParamKind::Weight)
            .map(Param::elems)
            .sum()
    }

    /// Whether this node has weights that gradient descent updates.
    pub fn has_trainable_weights(&self) -> bool {
        self.trainable_param_count() > 0
    }
}

/// Nodes executed as one kernel, set by `crate::passes`: a chain whose first member is a
/// convolution or dense layer; every member but the last has the next as its only consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FusedGroup {
    pub members: Vec<NodeId>,
    /// What the kernel does, e.g. `ConvBiasReluMaxPool`.
    pub kind: String,
}

/// A lowered model: nodes in topological order, node 0 the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    /// The node whose output is the model's output.
    pub output: NodeId,
    /// True when some layer reads other than the layer before it (Keras's functional models);
    /// the summary then adds a `Connected to` column.
    pub functional: bool,
    /// Weight files to load into layers of a `base`, with the names of those layers.
    pub base_weights: Vec<(std::path::PathBuf, Vec<String>)>,
    /// The last layer of the model file's `base` (what feature extraction stores by default).
    pub base_output: Option<String>,
    /// Fused groups (empty until `crate::passes::optimize` runs).
    pub groups: Vec<FusedGroup>,
}

impl Graph {
    pub fn input_shape(&self) -> &Shape {
        &self.nodes[0].shape
    }

    pub fn output_shape(&self) -> &Shape {
        &self.nodes[self.output].shape
    }

    pub fn node_by_name(&self, name: &str) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.name == name)
    }

    pub fn total_params(&self) -> usize {
        self.nodes.iter().map(Node::param_count).sum()
    }

    pub fn trainable_params(&self) -> usize {
        self.nodes.iter().map(Node::trainable_param_count).sum()
    }

    pub fn non_trainable_params(&self) -> usize {
        self.total_params() - self.trainable_params()
    }

    /// The fused group `node` belongs to: (group index, the group).
    pub fn group_of(&self, node: NodeId) -> Option<(usize, &FusedGroup)> {
        self.groups
            .iter()
            .enumerate()
            .find(|(_, g)| g.members.contains(&node))
    }

    /// Consumers of each node.
    pub fn consumers(&self) -> Vec<Vec<NodeId>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (id, node) in self.nodes.iter().enumerate() {
            for &i in &node.inputs {
                out[i].push(id);
            }
        }
        out
    }

    /// Fine-tuning from `name`: freezes every layer before it and unfreezes it and every layer
    /// after it. Returns false when no layer has that name.
    pub fn fine_tune_from(&mut self, name: &str) -> bool {
        let Some(first) = self.node_by_name(name) else {
            return false;
        };
        for (id, node) in self.nodes.iter_mut().enumerate().skip(1) {
            node.trainable = id >= first;
        }
        true
    }

    /// Freezes `name` and every layer before it (Keras "freeze up to"); later layers keep
    /// their setting. Returns false when no layer has that name.
    pub fn freeze_up_to(&mut self, name: &str) -> bool {
        let Some(last) = self.node_by_name(name) else {
            return false;
        };
        for node in &mut self.nodes[..=last] {
            node.trainable = false;
        }
        true
    }
}
