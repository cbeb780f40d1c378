//! [`Mapping`]: which file tensor fills which parameter, and how it is rearranged.
//!
//! Two ways, chosen by the file's names:
//! - **by name**, for cnntui's own checkpoints (`block1_conv1/kernel`): every parameter the
//!   model needs under its own name, in cnntui's layout;
//! - **by structure**, for everything else (torchvision's `features.0.weight`, timm's
//!   `pre_logits.fc1.weight`, any PyTorch state dict): the file's tensors are grouped by module
//!   (the name before the last dot: `features.1.conv.0.1`) and the groups are matched in order
//!   to the model's layers that have weights, each group checked for its kind (convolution,
//!   depthwise, linear, batch norm) and every shape. No table per model: a model whose layers
//!   come in PyTorch's order with PyTorch's shapes loads. Pickled state dicts keep PyTorch's
//!   registration order; safetensors sorts names, so there the module groups are taken in
//!   natural name order (`features.2` before `features.10`) and the top-level modules in the
//!   order that fits the model (`features`, `pre_logits`, `head`).
//!
//! BatchNorm's `num_batches_tracked` is ignored; tensors left over become a warning.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::file::{TensorInfo, WeightsFile};
use super::{Layout, WeightsError};
use crate::ir::{Graph, NodeId, Op};

/// One parameter filled from one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub node: NodeId,
    /// Index into the node's `params`.
    pub param: usize,
    /// Index into the file's `tensors`.
    pub tensor: usize,
    pub layout: Layout,
}

/// How a file fits a model.
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    pub assignments: Vec<Assignment>,
    /// Tensors deliberately skipped (`num_batches_tracked`, cnntui's optimizer state).
    pub ignored: Vec<usize>,
    /// Tensors the model has no place for.
    pub unused: Vec<usize>,
    /// True when matched by cnntui's own names.
    pub by_name: bool,
}

/// A layer with weights, as the matcher sees it.
struct Slot<'g> {
    node: NodeId,
    graph: &'g Graph,
}

impl Slot<'_> {
    fn name(&self) -> &str {
        &self.graph.nodes[self.node].name
    }
    fn class(&self) -> &'static str {
        self.graph.nodes[self.node].op.class_name()
    }
    fn shape(&self, k: usize) -> &[usize] {
        &self.graph.nodes[self.node].params[k].shape
    }

    /// The flatten this dense layer reads, as `(h, w, c)`, when it flattens a feature map
    /// (through dropout and activations, which keep the order).
    fn flattened_from(&self) -> Option<(usize, usize, usize)> {
        let g = self.graph;
        let mut v = *g.nodes[self.node].inputs.first()?;
        loop {
            match g.nodes[v].op {
                Op::Dropout { .. } | Op::Activation(_) | Op::ReLU(_) => {
                    v = *g.nodes[v].inputs.first()?
                }
                Op::Flatten => {
                    let u = *g.nodes[v].inputs.first()?;
                    return g.nodes[u].shape.hwc();
                }
                _ => return None,
            }
        }
    }

    /// What this layer needs, in PyTorch's terms, for messages: `weight [64, 3, 3, 3], bias [64]`.
    fn needs(&self) -> String {
        let node = &self.graph.nodes[self.node];
        let torch: Vec<String> = node
            .params
            .iter()
            .map(|p| {
                let s = &p.shape;
                let (name, shape) = match (&node.op, p.name) {
                    (Op::Conv2D { .. }, "kernel") => ("weight", vec![s[3], s[2], s[0], s[1]]),
                    (Op::DepthwiseConv2D { .. }, _) if p.name == "depthwise_kernel" => {
                        ("weight", vec![s[2] * s[3], 1, s[0], s[1]])
                    }
                    (Op::Dense { .. }, "kernel") => ("weight", vec![s[1], s[0]]),
                    (_, "gamma") => ("weight", s.clone()),
                    (_, "beta") => ("bias", s.clone()),
                    (_, "moving_mean") => ("running_mean", s.clone()),
                    (_, "moving_variance") => ("running_var", s.clone()),
                    (_, other) => (other, s.clone()),
                };
                format!("{name} {shape:?}")
            })
            .collect();
        format!(
            "layer `{}` ({}): {}",
            self.name(),
            self.class(),
            torch.join(", ")
        )
    }
}

/// The tensors of one PyTorch module (`features.0.1`), by leaf name.
#[derive(Clone, Debug)]
struct Group {
    prefix: String,
    leaves: Vec<(String, usize)>,
}

impl Group {
    fn get(&self, leaf: &str) -> Option<usize> {
        self.leaves.iter().find(|(l, _)| l == leaf).map(|&(_, t)| t)
    }
    fn top(&self) -> &str {
        self.prefix.split('.').next().unwrap_or("")
    }
}

fn split_name(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => ("", name),
    }
}

/// `features.2.weight` < `features.10.weight`: digit runs compare as numbers.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let pa: Vec<&str> = a.split('.').collect();
    let pb: Vec<&str> = b.split('.').collect();
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// Works out how `file` fits `graph`, for the layers named in `only` (all when `None`).
///
/// # Errors
/// [`WeightsError::Missing`], [`WeightsError::Shape`] and [`WeightsError::Kind`] naming the
/// tensors, layers and shapes.
pub fn map(
    graph: &Graph,
    file: &WeightsFile,
    only: Option<&[String]>,
) -> Result<Mapping, WeightsError> {
    let slots: Vec<Slot<'_>> = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.params.is_empty())
        .filter(|(_, n)| only.is_none_or(|o| o.contains(&n.name)))
        .map(|(node, _)| Slot { node, graph })
        .collect();
    let own_names: HashMap<String, (NodeId, usize)> = slots
        .iter()
        .flat_map(|s| {
            graph.nodes[s.node]
                .params
                .iter()
                .enumerate()
                .map(move |(k, p)| (format!("{}/{}", s.name(), p.name), (s.node, k)))
        })
        .collect();
    if file.tensors.iter().any(|t| own_names.contains_key(&t.name)) {
        return by_name(graph, file, &slots, &own_names);
    }
    let mut ignored = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, t) in file.tensors.iter().enumerate() {
        let (prefix, leaf) = split_name(&t.name);
        if leaf == "num_batches_tracked" {
            ignored.push(i);
            continue;
        }
        let g = *index.entry(prefix.to_string()).or_insert_with(|| {
            groups.push(Group {
                prefix: prefix.to_string(),
                leaves: Vec::new(),
            });
            groups.len() - 1
        });
        groups[g].leaves.push((leaf.to_string(), i));
    }
    let orders = if file.format.keeps_order() {
        vec![groups]
    } else {
        name_orders(groups)
    };
    let mut first_err = None;
    for order in orders {
        match align(file, &slots, &order) {
            Ok(mut m) => {
                m.ignored = ignored;
                return Ok(m);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| WeightsError::Missing {
        path: file.path.clone(),
        missing: slots.iter().map(Slot::needs).collect(),
    }))
}

/// Orders for a file that lost PyTorch's: natural name order within each top-level module,
/// the top-level modules in every order (natural first), at most 6! of them.
fn name_orders(mut groups: Vec<Group>) -> Vec<Vec<Group>> {
    groups.sort_by(|a, b| natural_cmp(&a.prefix, &b.prefix));
    let mut tops: Vec<String> = Vec::new();
    for g in &groups {
        if !tops.iter().any(|t| t == g.top()) {
            tops.push(g.top().to_string());
        }
    }
    if tops.len() > 6 {
        return vec![groups];
    }
    let mut perms = vec![Vec::new()];
    for _ in 0..tops.len() {
        perms = perms
            .into_iter()
            .flat_map(|p: Vec<usize>| {
                (0..tops.len())
                    .filter(|i| !p.contains(i))
                    .map(|i| {
                        let mut q = p.clone();
                        q.push(i);
                        q
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    perms
        .into_iter()
        .map(|p| {
            p.iter()
                .flat_map(|&t| {
                    let top = &tops[t];
                    groups.iter().filter(move |g| g.top() == top).cloned()
                })
                .collect()
        })
        .collect()
}

fn by_name(
    graph: &Graph,
    file: &WeightsFile,
    slots: &[Slot<'_>],
    own: &HashMap<String, (NodeId, usize)>,
) -> Result<Mapping, WeightsError> {
    let mut m = Mapping {
        by_name: true,
        ..Mapping::default()
    };
    let mut missing = Vec::new();
    for s in slots {
        for (k, p) in graph.nodes[s.node].params.iter().enumerate() {
            let name = format!("{}/{}", s.name(), p.name);
            match file.tensors.iter().position(|t| t.name == name) {
                None => missing.push(format!("`{name}` {:?}", p.shape)),
                Some(t) if file.tensors[t].shape != p.shape => {
                    return Err(WeightsError::Shape {
                        path: file.path.clone(),
                        name,
                        found: file.tensors[t].shape.clone(),
                        layer: s.name().to_string(),
                        class: s.class(),
                        expected: p.shape.clone(),
                        note: String::new(),
                    });
                }
                Some(t) => m.assignments.push(Assignment {
                    node: s.node,
                    param: k,
                    tensor: t,
                    layout: Layout::Same,
                }),
            }
        }
    }
    if !missing.is_empty() {
        return Err(WeightsError::Missing {
            path: file.path.clone(),
            missing,
        });
    }
    for (i, t) in file.tensors.iter().enumerate() {
        if own.contains_key(&t.name) {
            continue;
        }
        if t.name.starts_with("optimizer/") {
            m.ignored.push(i);
        } else {
            m.unused.push(i);
        }
    }
    Ok(m)
}

/// Matches groups to slots in order.
fn align(
    file: &WeightsFile,
    slots: &[Slot<'_>],
    groups: &[Group],
) -> Result<Mapping, WeightsError> {
    let mut m = Mapping::default();
    for (i, slot) in slots.iter().enumerate() {
        let Some(group) = groups.get(i) else {
            return Err(WeightsError::Missing {
                path: file.path.clone(),
                missing: slots[i..].iter().map(Slot::needs).collect(),
            });
        };
        let used = match_group(file, slot, group, &mut m.assignments)?;
        m.unused.extend(
            group
                .leaves
                .iter()
                .map(|&(_, t)| t)
                .filter(|t| !used.contains(t)),
        );
    }
    for g in groups.iter().skip(slots.len()) {
        m.unused.extend(g.leaves.iter().map(|&(_, t)| t));
    }
    m.unused.sort_unstable();
    Ok(m)
}

/// What a group's tensors look like, for messages.
fn group_kind(file: &WeightsFile, g: &Group) -> String {
    let shape = |leaf| g.get(leaf).map(|t| file.tensors[t].shape.clone());
    if g.get("running_mean").is_some() {
        "batch norm".into()
    } else if let Some(s) = shape("weight") {
        match s.len() {
            4 if s[1] == 1 => format!("a depthwise or 1-channel convolution weight {s:?}"),
            4 => format!("a convolution weight {s:?}"),
            2 => format!("a linear weight {s:?}"),
            _ => format!("a weight of shape {s:?}"),
        }
    } else {
        let leaves: Vec<&str> = g.leaves.iter().map(|(l, _)| l.as_str()).collect();
        format!("a module with {}", leaves.join(", "))
    }
}

/// Fills `slot` from `group`; returns the tensors used.
fn match_group(
    file: &WeightsFile,
    slot: &Slot<'_>,
    group: &Group,
    out: &mut Vec<Assignment>,
) -> Result<Vec<usize>, WeightsError> {
    let node = &slot.graph.nodes[slot.node];
    let full = |leaf: &str| {
        if group.prefix.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{leaf}", group.prefix)
        }
    };
    let first_name = group
        .leaves
        .first()
        .map(|(l, _)| full(l))
        .unwrap_or_default();
    let kind_err = || WeightsError::Kind {
        path: file.path.clone(),
        name: first_name.clone(),
        found: group_kind(file, group),
        layer: slot.name().to_string(),
        class: slot.class(),
    };
    let shape_err =
        |leaf: &str, t: &TensorInfo, expected: Vec<usize>, note: &str| WeightsError::Shape {
            path: file.path.clone(),
            name: full(leaf),
            found: t.shape.clone(),
            layer: slot.name().to_string(),
            class: slot.class(),
            expected,
            note: note.to_string(),
        };
    let missing = |leaf: &str, shape: Vec<usize>| WeightsError::Missing {
        path: file.path.clone(),
        missing: vec![format!(
            "`{}` {shape:?} for layer `{}` ({})",
            full(leaf),
            slot.name(),
            slot.class()
        )],
    };
    // The bias of a layer with `use_bias`; a bias tensor for a layer without one is an error.
    let bias = |use_bias: bool, channels: usize| match (use_bias, group.get("bias")) {
        (true, _) => Ok(Some(("bias", 1, vec![channels], Layout::Same))),
        (false, Some(b)) => Err(shape_err(
            "bias",
            &file.tensors[b],
            vec![],
            " (the layer has `use_bias: false`)",
        )),
        (false, None) => Ok(None),
    };
    let is_bn = group.get("running_mean").is_some();
    // (leaf, param index, expected PyTorch shape, layout)
    let mut wanted: Vec<(&str, usize, Vec<usize>, Layout)> = Vec::new();
    match node.op {
        Op::Conv2D { use_bias, .. } | Op::DepthwiseConv2D { use_bias, .. } => {
            let Some(w) = group.get("weight") else {
                return Err(kind_err());
            };
            if is_bn || file.tensors[w].shape.len() != 4 {
                return Err(kind_err());
            }
            let s = slot.shape(0);
            let (expected, layout, note) = if matches!(node.op, Op::Conv2D { .. }) {
                (
                    vec![s[3], s[2], s[0], s[1]],
                    Layout::ConvOihw,
                    format!(" (PyTorch's OIHW for the kernel {s:?} in HWIO)"),
                )
            } else {
                (
                    vec![s[2] * s[3], 1, s[0], s[1]],
                    Layout::Depthwise,
                    format!(" (PyTorch's [C·M, 1, kh, kw] for the depthwise kernel {s:?})"),
                )
            };
            if file.tensors[w].shape != expected {
                return Err(shape_err("weight", &file.tensors[w], expected, &note));
            }
            wanted.push(("weight", 0, expected, layout));
            let c_out = node.shape.channels();
            wanted.extend(bias(use_bias, c_out)?);
        }
        Op::Dense { use_bias, .. } => {
            let Some(w) = group.get("weight") else {
                return Err(kind_err());
            };
            let ws = &file.tensors[w].shape;
            if is_bn || !(ws.len() == 2 || ws.len() == 4) {
                return Err(kind_err());
            }
            let s = slot.shape(0);
            let (d_in, units) = (s[0], s[1]);
            let flat = slot.flattened_from().filter(|&(h, w, _)| h * w > 1);
            let layout = match (ws.len(), flat) {
                (2, Some((h, w, c))) if *ws == [units, d_in] => Layout::LinearChw { h, w, c },
                (2, None) if *ws == [units, d_in] => Layout::Linear,
                (4, Some((h, w, c))) if *ws == [units, c, h, w] => Layout::LinearChw { h, w, c },
                (4, _) if *ws == [units, d_in, 1, 1] => Layout::Linear,
                _ => {
                    let (expected, note) = match (ws.len(), flat) {
                        (4, Some((h, w, c))) => (
                            vec![units, c, h, w],
                            format!(" (a convolution over the {h}×{w}×{c} map it flattens)"),
                        ),
                        (4, None) => (vec![units, d_in, 1, 1], String::new()),
                        _ => (
                            vec![units, d_in],
                            format!(" (PyTorch's [out, in] for the kernel {s:?})"),
                        ),
                    };
                    return Err(shape_err("weight", &file.tensors[w], expected, &note));
                }
            };
            wanted.push(("weight", 0, ws.clone(), layout));
            wanted.extend(bias(use_bias, units)?);
        }
        Op::BatchNormalization { .. } => {
            if !is_bn {
                return Err(kind_err());
            }
            let c = slot.shape(0).to_vec();
            for (leaf, k) in [
                ("weight", 0),
                ("bias", 1),
                ("running_mean", 2),
                ("running_var", 3),
            ] {
                wanted.push((leaf, k, c.clone(), Layout::Same));
            }
        }
        _ => return Err(kind_err()),
    }
    let mut used = Vec::new();
    for (leaf, k, expected, layout) in wanted {
        let Some(t) = group.get(leaf) else {
            return Err(missing(leaf, expected));
        };
        if file.tensors[t].shape != expected {
            return Err(shape_err(leaf, &file.tensors[t], expected, ""));
        }
        out.push(Assignment {
            node: slot.node,
            param: k,
            tensor: t,
            layout,
        });
        used.push(t);
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;
    use std::cmp::Ordering;

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        assert_eq!(natural_cmp("features.2", "features.10"), Ordering::Less);
        assert_eq!(natural_cmp("features.10", "features.10.0"), Ordering::Less);
        assert_eq!(natural_cmp("classifier.0", "features.0"), Ordering::Less);
    }
}
