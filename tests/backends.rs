//! The JIT backend against the reference kernels on every shipped model: the same forward
//! output and the same gradients, at a small batch (the large models without their top and at
//! a reduced input size, so the suite stays fast), in training and in inference (where the
//! JIT folds batch normalisation).

use std::path::Path;

use cnntui::ir::{self, Graph};
use cnntui::model::{LossSpec, ModelFile, OptimizerSpec};
use cnntui::passes::{Target, optimize};
use cnntui::runtime::{Backend, Loss, Mode, Optimizer, ParamStore, Plan, Rng, Session};

fn unfused_graph(src: &str) -> Graph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/test.ron");
    let file = ModelFile::from_source(&path, src).expect("parses");
    ir::lower(&file).expect("lowers")
}

fn graph(src: &str, training: bool) -> Graph {
    let mut g = unfused_graph(src);
    optimize(
        &mut g,
        &Target {
            training,
            requested: vec![],
        },
    )
    .expect("optimizes");
    g
}

fn base(model: &str, size: usize) -> String {
    format!(
        r#"Model(name: "t", base: (model: "{model}", include_top: false, input_shape: ({size}, {size}, 3)), layers: [GlobalAveragePooling2D(), Dense(units: 5, activation: Softmax)])"#
    )
}

fn file(model: &str) -> String {
    format!(r#"Model(name: "t", base: (model: "{model}"))"#)
}

/// Relative L2 error of `b` against `a`. Elementwise bounds do not work for deep ReLU nets
/// in f32: two correct implementations that sum in different orders put a pre-activation on
/// different sides of zero now and then, which moves single gradient entries by percents while
/// the tensor as a whole agrees to ~1e-4; a wrong index or a missing term gives errors of
/// order one. `floor` is the size below which a tensor counts as zero (batch normalisation
/// makes some gradients vanish exactly, leaving only rounding noise to compare).
fn close_above(what: &str, a: &[f32], b: &[f32], floor: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let diff = norm(&mut a.iter().zip(b).map(|(x, y)| f64::from(x - y)));
    let size = norm(&mut a.iter().map(|&x| f64::from(x)))
        .max(floor)
        .max(1e-12);
    assert!(
        diff / size <= 1e-2,
        "{what}: relative L2 error {:.2e}",
        diff / size
    );
}

fn run(g: &Graph, backend: Backend, mode: Mode, n: usize) -> (Vec<f32>, ParamStore, Vec<String>) {
    let classes = g.output_shape().elems();
    let spec = if classes == 1 {
        LossSpec::BinaryCrossentropy
    } else {
        LossSpec::SparseCategoricalCrossentropy
    };
    let loss = Loss::new(spec, g);
    let mut params = ParamStore::init(g, 7);
    // Non-trivial batch-norm statistics, so folding them is exercised.
    for (v, node) in g.nodes.iter().enumerate() {
        if node.op.class_name() == "BatchNormalization" {
            let mut r = Rng::new(v as u64);
            params.tensors[v][2]
                .iter_mut()
                .for_each(|m| *m = r.uniform(-0.5, 0.5));
            params.tensors[v][3]
                .iter_mut()
                .for_each(|s| *s = r.uniform(0.5, 1.5));
        }
    }
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..n * g.input_shape().elems())
        .map(|_| rng.uniform(0.0, 1.0))
        .collect();
    let labels: Vec<u32> = (0..n as u32)
        .map(|i| i % classes.max(2) as u32 % classes as u32)
        .collect();
    let mut s = Session::new(g, loss.link).with_backend(backend);
    s.forward(g, &params, &x, n, mode, &mut Rng::new(1));
    let out = s.output(g).to_vec();
    if mode == Mode::Train {
        let mut grad = Vec::new();
        loss.evaluate(s.output(g), s.logits(), &labels, Some(&mut grad));
        s.backward(g, &params, &Plan::new(g, &[]), &grad);
    }
    let warnings = s.take_warnings();
    (out, s.param_grads.clone(), warnings)
}

fn check(name: &str, src: &str, n: usize) {
    check_graphs(name, n, |mode| graph(src, mode == Mode::Train));
}

fn check_graphs(name: &str, n: usize, graph: impl Fn(Mode) -> Graph) {
    for mode in [Mode::Train, Mode::Infer] {
        let g = graph(mode);
        let (out_r, grads_r, _) = run(&g, Backend::Reference, mode, n);
        let (out_j, grads_j, warnings) = run(&g, Backend::Jit, mode, n);
        assert!(
            !warnings.iter().any(|w| w.contains("unavailable")),
            "{name}: {warnings:?}"
        );
        close_above(&format!("{name} {mode:?} output"), &out_r, &out_j, 0.0);
        let all: f64 = grads_r
            .tensors
            .iter()
            .flatten()
            .flatten()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        for (v, node) in g.nodes.iter().enumerate() {
            for (k, p) in node.params.iter().enumerate() {
                let what = format!("{name} {mode:?} grad {}/{}", node.name, p.name);
                close_above(
                    &what,
                    &grads_r.tensors[v][k],
                    &grads_j.tensors[v][k],
                    1e-3 * all,
                );
            }
        }
    }
}

#[test]
fn mnist_convnet_agrees_on_both_backends() {
    check("mnist", &file("mnist.ron"), 5);
}

#[test]
fn unfused_mnist_convnet_with_standalone_jit_pools_agrees_on_both_backends() {
    let src = file("mnist.ron");
    check_graphs("unfused mnist", 5, |_| unfused_graph(&src));
}

#[test]
fn jit_optimizer_steps_match_the_reference() {
    let g = graph(&file("mnist.ron"), true);
    for spec in [
        "SGD(learning_rate: 0.1, momentum: 0.9, nesterov: true)",
        "RMSprop(learning_rate: 0.01)",
        "RMSprop(learning_rate: 0.01, momentum: 0.5)",
        "Adam(learning_rate: 0.01)",
    ] {
        let spec: OptimizerSpec = ron::from_str(spec).expect("optimizer spec");
        let grads = ParamStore::init(&g, 11);
        let mut results = Vec::new();
        for jit in [false, true] {
            let mut params = ParamStore::init(&g, 7);
            let mut opt = Optimizer::new(spec, &g);
            if jit {
                opt.use_jit(&g).expect("JIT optimizer compiles");
            }
            let layers = vec![true; g.nodes.len()];
            for _ in 0..3 {
                opt.apply(&g, &mut params, &grads, &layers);
            }
            results.push(params);
        }
        for (v, node) in g.nodes.iter().enumerate() {
            for (k, p) in node.params.iter().enumerate() {
                let (a, b) = (&results[0].tensors[v][k], &results[1].tensors[v][k]);
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                        "{spec:?} {}/{}: {x} vs {y}",
                        node.name,
                        p.name
                    );
                }
            }
        }
    }
}

#[test]
fn cats_and_dogs_small_agrees_on_both_backends() {
    check("cats_and_dogs_small", &file("cats_and_dogs_small.ron"), 2);
}

#[test]
fn vgg16_and_vgg19_bases_agree_on_both_backends() {
    check("vgg16", &base("vgg16.ron", 32), 2);
    check("vgg19", &base("vgg19.ron", 32), 1);
    check("vgg16_base", &base("vgg16_base.ron", 32), 1);
}

#[test]
fn mobilenet_v2_base_agrees_on_both_backends() {
    // Training-mode batch normalisation over a handful of values per channel amplifies the
    // last-bit differences of two correct implementations without bound, so this compares at
    // 96×96, where every late block still normalises over a 3×3 map per sample.
    check("mobilenet_v2", &base("mobilenet_v2.ron", 96), 2);
}

#[test]
fn mobilenet_v2_with_a_frozen_middle_agrees_on_both_backends() {
    // Every layer frozen but the first convolution and the classifier: the frozen
    // batch-norms fold into their groups in training too (scale and shift from the moving
    // statistics), and the gradient reaching Conv1 crosses every folded group and residual.
    let src = base("mobilenet_v2.ron", 64);
    let frozen = |mode: Mode| {
        let mut g = unfused_graph(&src);
        let last = g.nodes.len() - 1;
        for (v, node) in g.nodes.iter_mut().enumerate() {
            node.trainable = node.name == "Conv1" || v == last;
        }
        optimize(
            &mut g,
            &Target {
                training: mode == Mode::Train,
                requested: vec![],
            },
        )
        .expect("optimizes");
        g
    };
    let g = frozen(Mode::Train);
    let folded = g
        .groups
        .iter()
        .filter(|gr| gr.kind.contains("BatchNorm"))
        .count();
    assert!(
        folded > 40,
        "frozen batch-norms fold in training: {folded} groups"
    );
    let (_, grads_r, _) = run(&g, Backend::Reference, Mode::Train, 2);
    let (_, grads_j, warnings) = run(&g, Backend::Jit, Mode::Train, 2);
    assert!(
        !warnings
            .iter()
            .any(|w| w.contains("batch-norm") || w.contains("residual")),
        "{warnings:?}"
    );
    // Conv1's gradient is small beside the classifier's, so it is compared on its own scale.
    let conv1 = g.node_by_name("Conv1").expect("Conv1");
    let (r, j) = (&grads_r.tensors[conv1][0], &grads_j.tensors[conv1][0]);
    assert!(r.iter().any(|&x| x != 0.0), "Conv1 gets a gradient");
    close_above("frozen mobilenet_v2 Conv1 kernel gradient", r, j, 0.0);
    check_graphs("frozen mobilenet_v2", 2, frozen);
}

#[test]
fn depthwise_convolutions_train_on_the_jit_with_the_references_gradients() {
    // Stride 1 `same` and stride 2 `valid`, 6 channels (not a multiple of 4), with a bias.
    let src = r#"Model(name: "dw", input: (11, 11, 6), layers: [
        DepthwiseConv2D(name: "dw1", kernel_size: 3, padding: Same, activation: ReLU),
        DepthwiseConv2D(name: "dw2", kernel_size: 3, strides: 2, use_bias: false),
        Conv2D(filters: 4, kernel_size: 1, activation: ReLU),
        Flatten(), Dense(units: 3, activation: Softmax)])"#;
    let g = graph(src, true);
    let (_, grads_r, _) = run(&g, Backend::Reference, Mode::Train, 3);
    let (_, grads_j, warnings) = run(&g, Backend::Jit, Mode::Train, 3);
    assert!(warnings.is_empty(), "{warnings:?}");
    for (layer, k) in [("dw1", 0), ("dw1", 1), ("dw2", 0)] {
        let v = g.node_by_name(layer).expect(layer);
        let (r, j) = (&grads_r.tensors[v][k], &grads_j.tensors[v][k]);
        assert!(r.iter().any(|&x| x != 0.0), "{layer}/{k} gets a gradient");
        close_above(&format!("{layer} param {k} gradient"), r, j, 0.0);
    }
}
