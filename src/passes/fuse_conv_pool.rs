//! `fuse_conv_pool`: groups a convolution (or dense layer) with what follows it into one
//! kernel — `conv (+ bias) → [batch-norm] → [+ residual] → activation → [pool]`.
//!
//! Guards, checked for every node appended to a group: the group's current tail has exactly one
//! consumer (the appended node), is not the model's output and was not requested; the appended
//! node's other inputs (a residual) come before the group's head. Batch normalisation is folded
//! only for inference (training needs its batch statistics). Only one activation per group.

use cnntui_kernels::reference::Activation;

use super::{Pass, PassError, Target};
use crate::ir::{FusedGroup, Graph, NodeId, Op};

/// The conv/dense fusion pass.
pub struct FuseConvPool {
    target: Target,
}

impl FuseConvPool {
    pub fn new(target: Target) -> Self {
        FuseConvPool { target }
    }

    /// Whether `tail` may be extended by its single consumer.
    fn extendable(&self, g: &Graph, consumers: &[Vec<NodeId>], tail: NodeId) -> Option<NodeId> {
        match consumers[tail][..] {
            [next] if tail != g.output && !self.target.requested.contains(&tail) => Some(next),
            _ => None,
        }
    }
}

/// Parts of a group, in epilogue order, for its name (`ConvBiasReluMaxPool`).
#[derive(Default)]
struct Parts {
    head: &'static str,
    bias: bool,
    bn: bool,
    add: bool,
    act: Option<Activation>,
    pool: Option<&'static str>,
}

impl Parts {
    fn name(&self) -> String {
        let mut s = self.head.to_string();
        if self.bias {
            s += "Bias";
        }
        if self.bn {
            s += "BatchNorm";
        }
        if self.add {
            s += "Add";
        }
        match self.act {
            Some(Activation::ReLU) => s += "Relu",
            Some(Activation::ReLU6) => s += "Relu6",
            Some(Activation::Sigmoid) => s += "Sigmoid",
            Some(Activation::Tanh) => s += "Tanh",
            Some(Activation::Softmax) => s += "Softmax",
            Some(Activation::Linear) | None => {}
        }
        if let Some(p) = self.pool {
            s += p;
        }
        s
    }
}

impl Pass for FuseConvPool {
    fn name(&self) -> &'static str {
        "fuse_conv_pool"
    }

    fn run(&self, g: &mut Graph) -> Result<bool, PassError> {
        let consumers = g.consumers();
        let mut groups = Vec::new();
        let mut taken = vec![false; g.nodes.len()];
        for head in 1..g.nodes.len() {
            let (mut parts, head_act, use_bias) = match g.nodes[head].op {
                Op::Conv2D {
                    activation,
                    use_bias,
                    ..
                } => (
                    Parts {
                        head: "Conv",
                        ..Parts::default()
                    },
                    activation,
                    use_bias,
                ),
                Op::DepthwiseConv2D {
                    activation,
                    use_bias,
                    ..
                } => (
                    Parts {
                        head: "DepthwiseConv",
                        ..Parts::default()
                    },
                    activation,
                    use_bias,
                ),
                Op::Dense {
                    activation,
                    use_bias,
                    ..
                } => (
                    Parts {
                        head: "Dense",
                        ..Parts::default()
                    },
                    activation,
                    use_bias,
                ),
                _ => continue,
            };
            if taken[head] {
                continue;
            }
            parts.bias = use_bias;
            parts.act = (head_act != Activation::Linear).then_some(head_act);
            let dense = matches!(g.nodes[head].op, Op::Dense { .. });
            let mut members = vec![head];
            let mut tail = head;
            while let Some(next) = self.extendable(g, &consumers, tail) {
                let node = &g.nodes[next];
                let ok = match node.op {
                    Op::BatchNormalization { .. } => {
                        let fold = !self.target.training || !node.trainable;
                        let ok = fold
                            && !parts.bn
                            && !parts.add
                            && parts.act.is_none()
                            && parts.pool.is_none()
                            && !dense;
                        parts.bn |= ok;
                        ok
                    }
                    Op::Add => {
                        let others_before = node.inputs.iter().all(|&i| i == tail || i < head);
                        let ok = node.inputs.len() == 2
                            && others_before
                            && !parts.add
                            && parts.act.is_none()
                            && parts.pool.is_none()
                            && !dense;
                        parts.add |= ok;
                        ok
                    }
                    Op::Activation(a) | Op::ReLU(a) => {
                        let ok =
                            parts.act.is_none() && parts.pool.is_none() && a != Activation::Softmax;
                        if ok {
                            parts.act = Some(a);
                        }
                        ok
                    }
                    Op::MaxPooling2D { .. } | Op::AveragePooling2D { .. } => {
                        let ok = parts.pool.is_none() && !dense;
                        if ok {
                            parts.pool = Some(if matches!(node.op, Op::MaxPooling2D { .. }) {
                                "MaxPool"
                            } else {
                                "AvgPool"
                            });
                        }
                        ok
                    }
                    _ => false,
                };
                if !ok {
                    break;
                }
                members.push(next);
                tail = next;
            }
            if members.len() > 1 || parts.bias || parts.act.is_some() {
                members.iter().for_each(|&m| taken[m] = true);
                groups.push(FusedGroup {
                    members,
                    kind: parts.name(),
                });
            }
        }
        let changed = groups != g.groups;
        g.groups = groups;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::{Target, optimize};
    use std::path::Path;

    fn load(model: &str) -> Graph {
        crate::ir::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(model)).expect("lowers")
    }

    fn kinds(g: &Graph) -> Vec<(String, Vec<String>)> {
        g.groups
            .iter()
            .map(|gr| {
                (
                    gr.kind.clone(),
                    gr.members
                        .iter()
                        .map(|&m| g.nodes[m].name.clone())
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn mnist_convs_fuse_with_their_pools_and_dense_with_bias_and_relu() {
        let mut g = load("models/mnist.ron");
        optimize(
            &mut g,
            &Target {
                training: true,
                requested: vec![],
            },
        )
        .unwrap();
        let k = kinds(&g);
        assert_eq!(
            k[0],
            (
                "ConvBiasReluMaxPool".to_string(),
                vec!["conv2d".to_string(), "max_pooling2d".to_string()]
            )
        );
        assert_eq!(k[1].0, "ConvBiasReluMaxPool");
        assert_eq!(
            k[2],
            ("ConvBiasRelu".to_string(), vec!["conv2d_2".to_string()])
        );
        assert_eq!(k[3].0, "DenseBiasRelu");
        assert_eq!(k[4].0, "DenseBiasSoftmax");
    }

    #[test]
    fn a_requested_activation_stays_materialised() {
        let mut g = load("models/mnist.ron");
        let conv = g.node_by_name("conv2d").unwrap();
        optimize(
            &mut g,
            &Target {
                training: true,
                requested: vec![conv],
            },
        )
        .unwrap();
        assert_eq!(
            kinds(&g)[0],
            ("ConvBiasRelu".to_string(), vec!["conv2d".to_string()])
        );
    }

    #[test]
    fn mobilenet_folds_batch_norm_and_residual_for_inference_only() {
        let mut g = load("models/mobilenet_v2.ron");
        optimize(&mut g, &Target::default()).unwrap();
        let k = kinds(&g);
        assert_eq!(
            k[0],
            (
                "ConvBatchNormRelu6".to_string(),
                vec!["Conv1".into(), "bn_Conv1".into(), "Conv1_relu".into()]
            )
        );
        let add = k
            .iter()
            .find(|(_, m)| m.contains(&"block_2_add".to_string()))
            .expect("the residual add is fused");
        assert_eq!(add.0, "ConvBatchNormAdd");
        optimize(
            &mut g,
            &Target {
                training: true,
                requested: vec![],
            },
        )
        .unwrap();
        assert!(
            kinds(&g)
                .iter()
                .all(|(kind, _)| !kind.contains("BatchNorm")),
            "trainable BN is not folded in training"
        );
    }
}
