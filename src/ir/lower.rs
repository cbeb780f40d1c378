//! Lowering: `ModelSpec` → [`Graph`]. Resolves a `base`, names layers as Keras does, resolves
//! `inputs`, sorts topologically (rejecting cycles), infers every shape and creates every
//! parameter. All validation of a model happens here, once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cnntui_kernels::geom::window_out;
use cnntui_kernels::reference::Activation;
use cnntui_kernels::{Padding2d, Pool2dGeom};

use super::error::{LoadError, LowerError};
use super::graph::{Graph, Node, NodeId, Param, ParamInit, ParamKind, Shape};
use super::op::Op;
use crate::model::{self, ActivationSpec, FreezeSpec, LayerSpec, ModelFile, PaddingSpec, Size2};

/// The name Keras 3 gives the input layer.
pub const INPUT_NAME: &str = "input_layer";

/// Loads a model file (and its `base`, recursively) and lowers it.
///
/// # Errors
/// Parse errors with line:column, and every [`LowerError`].
pub fn load(path: &Path) -> Result<Graph, LoadError> {
    let file = model::load(path)?;
    lower(&file)
}

/// A layer to lower, with the file it came from and whether a frozen base holds it.
struct Entry {
    spec: LayerSpec,
    file: PathBuf,
    /// Position in its own file (1-based), for messages.
    index: usize,
    frozen_by_base: bool,
}

/// Lowers a parsed model file.
///
/// # Errors
/// Every [`LowerError`]; parse errors of a `base` file.
pub fn lower(file: &ModelFile) -> Result<Graph, LoadError> {
    let mut chain = vec![file.path.display().to_string()];
    let (input, entries, base_ranges, base_len) = collect(file, true, &mut chain)?;
    let own_file = file.path.clone();
    let input = input.ok_or_else(|| LowerError::NoInput {
        file: own_file.clone(),
    })?;
    if entries.is_empty() {
        return Err(LowerError::NoLayers { file: own_file }.into());
    }
    let input = positive3(&own_file, "input", input)?;
    let names = assign_names(&entries)?;
    // The layers each base's weights fill, by the names they end up with (generated ones too).
    let base_weights = base_ranges
        .into_iter()
        .map(|(path, range)| (path, names[range].to_vec()))
        .collect();
    let base_output = base_len.checked_sub(1).map(|last| names[last].clone());
    let inputs = resolve_inputs(&entries, &names)?;
    let order = topological_order(&own_file, &names, &inputs)?;

    let functional = inputs
        .iter()
        .enumerate()
        .any(|(i, ins)| ins.as_slice() != [i]);
    let mut nodes = vec![Node {
        name: INPUT_NAME.to_string(),
        op: Op::Input,
        inputs: vec![],
        shape: Shape(vec![input.0, input.1, input.2]),
        trainable: true,
        params: vec![],
    }];
    // Entry i is node position_of[i] (node 0 is the input; entry inputs use i + 1).
    let mut node_of = vec![0usize; entries.len() + 1];
    for &e in &order {
        let entry = &entries[e - 1];
        let in_ids: Vec<NodeId> = inputs[e - 1].iter().map(|&i| node_of[i]).collect();
        let in_shapes: Vec<(String, Shape)> = in_ids
            .iter()
            .map(|&i| (nodes[i].name.clone(), nodes[i].shape.clone()))
            .collect();
        let name = names[e - 1].clone();
        let (op, shape, params) = lower_layer(entry, &name, &in_shapes)?;
        let (_, _, trainable) = entry.spec.common();
        node_of[e] = nodes.len();
        nodes.push(Node {
            name,
            op,
            inputs: in_ids,
            shape,
            trainable: trainable.unwrap_or(true) && !entry.frozen_by_base,
            params,
        });
    }
    let output = node_of[entries.len()];
    let mut graph = Graph {
        name: file.spec.name.clone(),
        nodes,
        output,
        functional,
        base_weights,
        base_output,
        groups: Vec::new(),
    };
    if let Some(FreezeSpec::UpTo(name)) = &file.spec.freeze
        && !graph.freeze_up_to(name)
    {
        let mut hint =
            crate::model::suggest_name(name, graph.nodes.iter().map(|n| n.name.as_str()));
        if hint.is_empty() {
            hint = format!(
                "; `cnntui summary {}` lists the layer names",
                file.path.display()
            );
        }
        return Err(LowerError::FreezeUnknown {
            file: file.path.clone(),
            name: name.clone(),
            hint,
        }
        .into());
    }
    Ok(graph)
}

/// The input, the entries bottom first, each base's weights file with the range of entries it
/// fills, and how many of the entries the file's own `base` gave.
type Collected = (
    Option<(i64, i64, i64)>,
    Vec<Entry>,
    Vec<(PathBuf, std::ops::Range<usize>)>,
    usize,
);

/// Flattens a file and its bases into one list of entries, bottom first.
fn collect(
    file: &ModelFile,
    include_top: bool,
    chain: &mut Vec<String>,
) -> Result<Collected, LoadError> {
    let mut input = file.spec.input;
    let mut entries = Vec::new();
    let mut weights = Vec::new();
    if let Some(base) = &file.spec.base {
        let path = file.resolve(&base.model);
        let shown = path.display().to_string();
        if chain.contains(&shown) || chain.len() > 16 {
            chain.push(shown);
            return Err(LowerError::BaseCycle {
                file: file.path.clone(),
                chain: chain.clone(),
            }
            .into());
        }
        chain.push(shown);
        let base_file = model::load(&path)?;
        let (base_input, mut base_entries, base_weights, _) =
            collect(&base_file, base.include_top, chain)?;
        chain.pop();
        if !base.trainable {
            base_entries
                .iter_mut()
                .for_each(|e| e.frozen_by_base = true);
        }
        // The base's entries come first in this file's list, so its ranges stay valid here.
        if let Some(w) = &base.weights {
            weights.push((file.resolve(w), 0..base_entries.len()));
        }
        weights.extend(base_weights);
        input = base.input_shape.or(input).or(base_input);
        entries.extend(base_entries);
    }
    let base_len = entries.len();
    let own = file
        .spec
        .layers
        .iter()
        .chain(if include_top { &file.spec.top[..] } else { &[] });
    entries.extend(own.enumerate().map(|(i, spec)| Entry {
        spec: spec.clone(),
        file: file.path.clone(),
        index: i + 1,
        frozen_by_base: false,
    }));
    Ok((input, entries, weights, base_len))
}

/// Keras's automatic names (`conv2d`, `conv2d_1`, …) for unnamed layers; rejects duplicates.
fn assign_names(entries: &[Entry]) -> Result<Vec<String>, LowerError> {
    let mut counters: HashMap<&'static str, usize> = HashMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut names = Vec::with_capacity(entries.len());
    seen.insert(INPUT_NAME.to_string(), 0);
    for (i, e) in entries.iter().enumerate() {
        let name = match e.spec.common().0 {
            Some(n) => n.to_string(),
            None => {
                let prefix = snake_case(e.spec.class_name());
                let k = counters.entry(e.spec.class_name()).or_insert(0);
                let name = if *k == 0 {
                    prefix
                } else {
                    format!("{prefix}_{k}")
                };
                *k += 1;
                name
            }
        };
        if let Some(&first) = seen.get(&name) {
            return Err(LowerError::DuplicateName {
                file: e.file.clone(),
                name,
                first,
                second: i + 1,
            });
        }
        seen.insert(name.clone(), i + 1);
        names.push(name);
    }
    Ok(names)
}

/// `MaxPooling2D` → `max_pooling2d`, as Keras derives default names.
fn snake_case(class: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = class.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Inputs of each entry as entry positions (0 = the model input, i + 1 = entry i).
fn resolve_inputs(entries: &[Entry], names: &[String]) -> Result<Vec<Vec<usize>>, LowerError> {
    let mut pos: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i + 1))
        .collect();
    pos.insert(INPUT_NAME, 0);
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| match e.spec.common().1 {
            None => Ok(vec![i]),
            Some(list) => list
                .iter()
                .map(|n| {
                    pos.get(n.as_str())
                        .copied()
                        .ok_or_else(|| LowerError::MissingInput {
                            file: e.file.clone(),
                            layer: names[i].clone(),
                            class: e.spec.class_name(),
                            index: e.index,
                            missing: n.clone(),
                            hint: crate::model::suggest_name(n, pos.keys().copied()),
                        })
                })
                .collect(),
        })
        .collect()
}

/// Kahn's algorithm, stable in file order; entries left over form a cycle.
fn topological_order(
    file: &Path,
    names: &[String],
    inputs: &[Vec<usize>],
) -> Result<Vec<usize>, LowerError> {
    let n = inputs.len();
    let mut indegree: Vec<usize> = inputs
        .iter()
        .map(|ins| ins.iter().filter(|&&i| i != 0).count())
        .collect();
    let mut consumers = vec![Vec::new(); n + 1];
    for (e, ins) in inputs.iter().enumerate() {
        for &i in ins {
            consumers[i].push(e + 1);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (1..=n).filter(|&e| indegree[e - 1] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(e) = ready.pop_first() {
        order.push(e);
        for &c in &consumers[e] {
            indegree[c - 1] -= 1;
            if indegree[c - 1] == 0 {
                ready.insert(c);
            }
        }
    }
    if order.len() < n {
        return Err(LowerError::Cycle {
            file: file.to_path_buf(),
            layers: find_cycle(names, inputs, &indegree),
        });
    }
    Ok(order)
}

/// One cycle among the entries Kahn's algorithm could not order, as names, closed (`a → b →
/// a`). Entries downstream of a cycle are unordered too but are not part of it: walking
/// backwards along unordered inputs from any unordered entry must end in a cycle.
fn find_cycle(names: &[String], inputs: &[Vec<usize>], indegree: &[usize]) -> Vec<String> {
    let Some(start) = (1..=inputs.len()).find(|e| indegree[e - 1] > 0) else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut current = start;
    loop {
        let Some(&next) = inputs[current - 1]
            .iter()
            .find(|&&i| i != 0 && indegree[i - 1] > 0)
        else {
            return Vec::new();
        };
        if let Some(at) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<String> = path[at..]
                .iter()
                .rev()
                .map(|&e| names[e - 1].clone())
                .collect();
            cycle.push(cycle[0].clone());
            return cycle;
        }
        path.push(next);
        current = next;
    }
}

/// Context for the errors of one layer.
struct At<'a> {
    entry: &'a Entry,
    name: &'a str,
}

impl At<'_> {
    fn bad(
        &self,
        field: &'static str,
        value: impl ToString,
        constraint: &'static str,
    ) -> LowerError {
        LowerError::BadValue {
            file: self.entry.file.clone(),
            layer: self.name.to_string(),
            class: self.entry.spec.class_name(),
            index: self.entry.index,
            field,
            value: value.to_string(),
            constraint,
        }
    }

    fn shape(&self, input: &Shape, problem: impl Into<String>) -> LowerError {
        LowerError::Shape {
            file: self.entry.file.clone(),
            layer: self.name.to_string(),
            class: self.entry.spec.class_name(),
            index: self.entry.index,
            input: input.clone(),
            problem: problem.into(),
        }
    }

    fn positive(&self, field: &'static str, v: i64) -> Result<usize, LowerError> {
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| self.bad(field, v, "at least 1"))
    }

    fn positive2(&self, field: &'static str, s: Size2) -> Result<(usize, usize), LowerError> {
        let (a, b) = s.pair();
        match (usize::try_from(a), usize::try_from(b)) {
            (Ok(a), Ok(b)) if a > 0 && b > 0 => Ok((a, b)),
            _ => Err(self.bad(field, format!("({a}, {b})"), "at least 1 on both axes")),
        }
    }

    fn padding(
        &self,
        spec: PaddingSpec,
        hwc: (usize, usize, usize),
        k: (usize, usize),
        s: (usize, usize),
    ) -> Result<Padding2d, LowerError> {
        Ok(match spec {
            PaddingSpec::Valid => Padding2d::default(),
            PaddingSpec::Same => Padding2d::same(hwc.0, hwc.1, k.0, k.1, s.0, s.1),
            PaddingSpec::Explicit(p) => self.explicit_pad(p.sides())?,
        })
    }

    fn explicit_pad(
        &self,
        ((t, b), (l, r)): ((i64, i64), (i64, i64)),
    ) -> Result<Padding2d, LowerError> {
        let conv = |v: i64| usize::try_from(v).map_err(|_| self.bad("padding", v, "zero or more"));
        Ok(Padding2d {
            top: conv(t)?,
            bottom: conv(b)?,
            left: conv(l)?,
            right: conv(r)?,
        })
    }

    fn image(&self, input: &Shape) -> Result<(usize, usize, usize), LowerError> {
        input.hwc().ok_or_else(|| {
            self.shape(
                input,
                "is not an image: this layer needs a 4-D (batch, height, width, channels) input",
            )
        })
    }

    fn window(
        &self,
        input: &Shape,
        hwc: (usize, usize, usize),
        k: (usize, usize),
        s: (usize, usize),
        pad: Padding2d,
    ) -> Result<(usize, usize), LowerError> {
        let out_h = window_out(hwc.0, pad.top, pad.bottom, k.0, s.0);
        let out_w = window_out(hwc.1, pad.left, pad.right, k.1, s.1);
        match (out_h, out_w) {
            (Some(h), Some(w)) => Ok((h, w)),
            _ => Err(self.shape(
                input,
                format!(
                    "is smaller than the {}×{} window (padding {}+{} rows, {}+{} columns): use `padding: Same`, a smaller window, or remove a pooling layer before it",
                    k.0, k.1, pad.top, pad.bottom, pad.left, pad.right
                ),
            )),
        }
    }
}

fn activation(a: ActivationSpec) -> Activation {
    match a {
        ActivationSpec::Linear => Activation::Linear,
        ActivationSpec::ReLU => Activation::ReLU,
        ActivationSpec::ReLU6 => Activation::ReLU6,
        ActivationSpec::Sigmoid => Activation::Sigmoid,
        ActivationSpec::Tanh => Activation::Tanh,
        ActivationSpec::Softmax => Activation::Softmax,
    }
}

fn weight(name: &'static str, shape: Vec<usize>, init: ParamInit) -> Param {
    Param {
        name,
        shape,
        kind: ParamKind::Weight,
        init,
    }
}

/// Keras's `compute_fans`: the receptive field times the last two axes.
fn glorot(shape: &[usize]) -> ParamInit {
    let rf: usize = shape[..shape.len() - 2].iter().product();
    ParamInit::GlorotUniform {
        fan_in: shape[shape.len() - 2] * rf,
        fan_out: shape[shape.len() - 1] * rf,
    }
}

fn lower_layer(
    entry: &Entry,
    name: &str,
    inputs: &[(String, Shape)],
) -> Result<(Op, Shape, Vec<Param>), LowerError> {
    let at = At { entry, name };
    if !matches!(entry.spec, LayerSpec::Add(_)) && inputs.len() != 1 {
        return Err(at.bad(
            "inputs",
            format!("{} layers", inputs.len()),
            "exactly one layer (only Add takes several)",
        ));
    }
    let input = &inputs[0].1;
    Ok(match &entry.spec {
        LayerSpec::Conv2D(s) => {
            let hwc = at.image(input)?;
            let filters = at.positive("filters", s.filters)?;
            let kernel = at.positive2("kernel_size", s.kernel_size)?;
            let strides = at.positive2("strides", s.strides.unwrap_or(Size2::Square(1)))?;
            let padding = at.padding(s.padding, hwc, kernel, strides)?;
            let (h, w) = at.window(input, hwc, kernel, strides, padding)?;
            let use_bias = s.use_bias.unwrap_or(true);
            let k_shape = vec![kernel.0, kernel.1, hwc.2, filters];
            let mut params = vec![weight("kernel", k_shape.clone(), glorot(&k_shape))];
            if use_bias {
                params.push(weight("bias", vec![filters], ParamInit::Zeros));
            }
            let op = Op::Conv2D {
                filters,
                kernel,
                strides,
                padding,
                activation: activation(s.activation),
                use_bias,
            };
            (op, Shape(vec![h, w, filters]), params)
        }
        LayerSpec::DepthwiseConv2D(s) => {
            let hwc = at.image(input)?;
            let depth_multiplier =
                at.positive("depth_multiplier", s.depth_multiplier.unwrap_or(1))?;
            let kernel = at.positive2("kernel_size", s.kernel_size)?;
            let strides = at.positive2("strides", s.strides.unwrap_or(Size2::Square(1)))?;
            let padding = at.padding(s.padding, hwc, kernel, strides)?;
            let (h, w) = at.window(input, hwc, kernel, strides, padding)?;
            let use_bias = s.use_bias.unwrap_or(true);
            let c_out = hwc.2 * depth_multiplier;
            let k_shape = vec![kernel.0, kernel.1, hwc.2, depth_multiplier];
            let mut params = vec![weight(
                "depthwise_kernel",
                k_shape.clone(),
                glorot(&k_shape),
            )];
            if use_bias {
                params.push(weight("bias", vec![c_out], ParamInit::Zeros));
            }
            let op = Op::DepthwiseConv2D {
                depth_multiplier,
                kernel,
                strides,
                padding,
                activation: activation(s.activation),
                use_bias,
            };
            (op, Shape(vec![h, w, c_out]), params)
        }
        LayerSpec::Dense(s) => {
            let units = at.positive("units", s.units)?;
            let [d_in] = input.0[..] else {
                return Err(at.shape(input, "is not flat: Dense needs a 2-D (batch, features) input here; add `Flatten()` or `GlobalAveragePooling2D()` before it"));
            };
            let use_bias = s.use_bias.unwrap_or(true);
            let mut params = vec![weight("kernel", vec![d_in, units], glorot(&[d_in, units]))];
            if use_bias {
                params.push(weight("bias", vec![units], ParamInit::Zeros));
            }
            (
                Op::Dense {
                    units,
                    activation: activation(s.activation),
                    use_bias,
                },
                Shape(vec![units]),
                params,
            )
        }
        LayerSpec::MaxPooling2D(s) | LayerSpec::AveragePooling2D(s) => {
            let hwc = at.image(input)?;
            let pool = at.positive2("pool_size", s.pool_size.unwrap_or(Size2::Square(2)))?;
            let strides = match s.strides {
                Some(st) => at.positive2("strides", st)?,
                None => pool,
            };
            let padding = at.padding(s.padding, hwc, pool, strides)?;
            let (h, w) = at.window(input, hwc, pool, strides, padding)?;
            // A window made only of padding would have no value to pool.
            let geom = Pool2dGeom::new(1, hwc, pool, strides, padding);
            if geom.is_none() || padding.top >= pool.0 || padding.left >= pool.1 {
                return Err(at.shape(
                    input,
                    "gives a pooling window that lies wholly in the padding: reduce the padding",
                ));
            }
            let op = if matches!(entry.spec, LayerSpec::MaxPooling2D(_)) {
                Op::MaxPooling2D {
                    pool,
                    strides,
                    padding,
                }
            } else {
                Op::AveragePooling2D {
                    pool,
                    strides,
                    padding,
                }
            };
            (op, Shape(vec![h, w, hwc.2]), vec![])
        }
        LayerSpec::GlobalAveragePooling2D(_) => {
            let hwc = at.image(input)?;
            (Op::GlobalAveragePooling2D, Shape(vec![hwc.2]), vec![])
        }
        LayerSpec::Flatten(_) => (Op::Flatten, Shape(vec![input.elems()]), vec![]),
        LayerSpec::Dropout(s) => {
            if !(0.0..1.0).contains(&s.rate) {
                return Err(at.bad("rate", s.rate, "in [0, 1)"));
            }
            (
                Op::Dropout {
                    rate: s.rate as f32,
                },
                input.clone(),
                vec![],
            )
        }
        LayerSpec::Activation(s) => (
            Op::Activation(activation(s.activation)),
            input.clone(),
            vec![],
        ),
        LayerSpec::ReLU(s) => {
            let act = match s.max_value {
                None => Activation::ReLU,
                Some(6.0) => Activation::ReLU6,
                Some(v) => {
                    return Err(at.bad(
                        "max_value",
                        v,
                        "6.0 or absent (ReLU6 and ReLU are supported)",
                    ));
                }
            };
            (Op::ReLU(act), input.clone(), vec![])
        }
        LayerSpec::BatchNormalization(s) => {
            let momentum = s.momentum.unwrap_or(0.99);
            let epsilon = s.epsilon.unwrap_or(1e-3);
            if !(0.0..=1.0).contains(&momentum) {
                return Err(at.bad("momentum", momentum, "in [0, 1]"));
            }
            if epsilon.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return Err(at.bad("epsilon", epsilon, "greater than 0"));
            }
            let c = input.channels();
            let stat = |name| Param {
                name,
                shape: vec![c],
                kind: ParamKind::MovingStat,
                init: if name == "moving_variance" {
                    ParamInit::Ones
                } else {
                    ParamInit::Zeros
                },
            };
            let params = vec![
                weight("gamma", vec![c], ParamInit::Ones),
                weight("beta", vec![c], ParamInit::Zeros),
                stat("moving_mean"),
                stat("moving_variance"),
            ];
            (
                Op::BatchNormalization {
                    momentum: momentum as f32,
                    epsilon: epsilon as f32,
                },
                input.clone(),
                params,
            )
        }
        LayerSpec::ZeroPadding2D(s) => {
            let (h, w, c) = at.image(input)?;
            let pad = at.explicit_pad(s.padding.map_or(((1, 1), (1, 1)), |p| p.sides()))?;
            let shape = Shape(vec![h + pad.top + pad.bottom, w + pad.left + pad.right, c]);
            (Op::ZeroPadding2D(pad), shape, vec![])
        }
        LayerSpec::Add(_) => {
            if inputs.len() < 2 {
                return Err(at.bad(
                    "inputs",
                    format!("{} layer", inputs.len()),
                    "at least two layers",
                ));
            }
            if inputs.iter().any(|(_, s)| s != input) {
                return Err(LowerError::AddMismatch {
                    file: entry.file.clone(),
                    layer: name.to_string(),
                    index: entry.index,
                    inputs: inputs.to_vec(),
                });
            }
            (Op::Add, input.clone(), vec![])
        }
    })
}

fn positive3(
    file: &Path,
    field: &'static str,
    (h, w, c): (i64, i64, i64),
) -> Result<(usize, usize, usize), LowerError> {
    match (usize::try_from(h), usize::try_from(w), usize::try_from(c)) {
        (Ok(h), Ok(w), Ok(c)) if h > 0 && w > 0 && c > 0 => Ok((h, w, c)),
        _ => Err(LowerError::BadValue {
            file: file.to_path_buf(),
            layer: INPUT_NAME.to_string(),
            class: "InputLayer",
            index: 0,
            field,
            value: format!("({h}, {w}, {c})"),
            constraint: "at least 1 on every axis",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_matches_keras_default_names() {
        assert_eq!(snake_case("Conv2D"), "conv2d");
        assert_eq!(snake_case("MaxPooling2D"), "max_pooling2d");
        assert_eq!(snake_case("BatchNormalization"), "batch_normalization");
        assert_eq!(snake_case("DepthwiseConv2D"), "depthwise_conv2d");
        assert_eq!(
            snake_case("GlobalAveragePooling2D"),
            "global_average_pooling2d"
        );
        assert_eq!(snake_case("ZeroPadding2D"), "zero_padding2d");
    }
}
