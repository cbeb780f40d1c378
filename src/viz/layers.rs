//! Which layers have feature maps worth drawing, and looking layers up by name with errors that
//! list the valid choices.

use crate::ir::{Graph, NodeId, Op};

use super::VizError;

/// Whether node `v` outputs a 2-D feature map (`h × w × c`) and is a convolution, a pooling
/// layer, or an activation layer (in MobileNetV2 the ReLU6 after each convolution, whose output
/// is what the next block sees). Batch normalisation, padding and additions are left out.
pub fn has_feature_map(graph: &Graph, v: NodeId) -> bool {
    let node = &graph.nodes[v];
    node.shape.hwc().is_some()
        && matches!(
            node.op,
            Op::Conv2D { .. }
                | Op::DepthwiseConv2D { .. }
                | Op::MaxPooling2D { .. }
                | Op::AveragePooling2D { .. }
                | Op::Activation(_)
                | Op::ReLU(_)
        )
}

/// Every layer with a feature map, in graph order.
pub fn feature_layers(graph: &Graph) -> Vec<NodeId> {
    (1..graph.nodes.len())
        .filter(|&v| has_feature_map(graph, v))
        .collect()
}

/// The last node whose output is a 2-D feature map (Grad-CAM's default: `out_relu` in
/// MobileNetV2, the last pooling layer of the Keras book's convnets).
pub fn last_feature_map(graph: &Graph) -> Option<NodeId> {
    (1..graph.nodes.len())
        .rev()
        .find(|&v| graph.nodes[v].shape.hwc().is_some())
}

fn list(graph: &Graph) -> String {
    let names: Vec<&str> = feature_layers(graph)
        .iter()
        .map(|&v| graph.nodes[v].name.as_str())
        .collect();
    if names.len() > 24 {
        format!(
            "{}, … {} (see `cnntui summary`)",
            names[..20].join(", "),
            names[names.len() - 1]
        )
    } else {
        names.join(", ")
    }
}

/// Looks up a layer that must have a 2-D feature map.
///
/// # Errors
/// [`VizError::UnknownLayer`] or [`VizError::NotConvolutional`], listing the valid layers.
pub fn feature_layer(graph: &Graph, name: &str) -> Result<NodeId, VizError> {
    let Some(v) = graph.node_by_name(name).filter(|&v| v > 0) else {
        return Err(VizError::UnknownLayer {
            name: name.to_string(),
            valid: list(graph),
        });
    };
    let node = &graph.nodes[v];
    if node.shape.hwc().is_none() {
        return Err(VizError::NotConvolutional {
            name: name.to_string(),
            class: node.op.class_name(),
            shape: node.shape.0.clone(),
            valid: list(graph),
        });
    }
    Ok(v)
}
