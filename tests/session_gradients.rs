//! Whole-model gradients of the reference session against finite differences of its own
//! loss: the kernels are checked one by one in f64 in the kernels crate; this checks the
//! wiring (batch chunking across threads, residual `Add`, batch-norm statistics, padding,
//! dropout masks, the loss on logits) in f32, along random directions.

use std::path::Path;

use cnntui::ir::{self, Graph};
use cnntui::model::{LossSpec, ModelFile};
use cnntui::runtime::{Loss, Mode, ParamStore, Plan, Rng, Session};

fn graph(src: &str) -> Graph {
    let file = ModelFile::from_source(Path::new("test.ron"), src).expect("parses");
    ir::lower(&file).expect("lowers")
}

/// A model touching every op: strided `same` conv, batch norm, ReLU6, zero padding, depthwise,
/// a residual add, average and max pooling, global pooling, dropout, dense, softmax.
const EVERY_OP: &str = r#"Model(
    name: "every_op",
    input: (9, 9, 3),
    layers: [
        Conv2D(name: "stem", filters: 6, kernel_size: 3, strides: 2, padding: Same, activation: Tanh),
        BatchNormalization(name: "bn"),
        ReLU(name: "relu6", max_value: 6.0),
        ZeroPadding2D(padding: ((0, 1), (1, 0))),
        DepthwiseConv2D(name: "dw", kernel_size: 2, depth_multiplier: 1, activation: Sigmoid),
        Conv2D(name: "proj", filters: 6, kernel_size: 1),
        Add(name: "add", inputs: ["relu6", "proj"]),
        AveragePooling2D(pool_size: 2, strides: 1, padding: Same),
        MaxPooling2D(pool_size: 2),
        Conv2D(filters: 5, kernel_size: 1, activation: Tanh),
        GlobalAveragePooling2D(),
        Dropout(rate: 0.3),
        Dense(units: 7, activation: Tanh),
        Dense(units: 4, activation: Softmax),
    ],
)"#;

fn loss_of(g: &Graph, loss: &Loss, params: &ParamStore, x: &[f32], labels: &[u32]) -> f64 {
    let mut s = Session::new(g, loss.link);
    s.forward(g, params, x, labels.len(), Mode::Train, &mut Rng::new(9));
    loss.evaluate(s.output(g), s.logits(), labels, None)
        .loss_sum
        / labels.len() as f64
}

fn random(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-scale, scale)).collect()
}

#[test]
fn parameter_and_input_gradients_match_finite_differences() {
    let g = graph(EVERY_OP);
    let loss = Loss::new(LossSpec::SparseCategoricalCrossentropy, &g);
    let mut rng = Rng::new(1);
    let n = 5;
    let x = random(&mut rng, n * g.input_shape().elems(), 1.0);
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 4).collect();
    let params = ParamStore::init(&g, 3);

    let mut s = Session::new(&g, loss.link);
    s.forward(&g, &params, &x, n, Mode::Train, &mut Rng::new(9));
    let mut grad = Vec::new();
    loss.evaluate(s.output(&g), s.logits(), &labels, Some(&mut grad));
    s.backward(&g, &params, &Plan::new(&g, &[0]), &grad);

    // Along a random direction in parameter space (moving statistics excluded).
    let mut dir = ParamStore::zeros_like(&g);
    for (v, node) in g.nodes.iter().enumerate() {
        for (k, p) in node.params.iter().enumerate() {
            if p.kind == ir::ParamKind::Weight {
                dir.tensors[v][k] = random(&mut rng, p.elems(), 1.0);
            }
        }
    }
    let h = 1e-3f32;
    let shifted = |sign: f32| {
        let mut p = params.clone();
        for (t, d) in p
            .tensors
            .iter_mut()
            .flatten()
            .zip(dir.tensors.iter().flatten())
        {
            t.iter_mut().zip(d).for_each(|(t, d)| *t += sign * h * d);
        }
        loss_of(&g, &loss, &p, &x, &labels)
    };
    let numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * h as f64);
    let analytic: f64 = s
        .param_grads
        .tensors
        .iter()
        .flatten()
        .zip(dir.tensors.iter().flatten())
        .map(|(g, d)| g.iter().zip(d).map(|(g, d)| f64::from(g * d)).sum::<f64>())
        .sum();
    assert!(
        (numeric - analytic).abs() <= 1e-2 * analytic.abs().max(1e-3),
        "parameters: numeric {numeric} analytic {analytic}"
    );

    // Along a random direction in input space.
    let dx = random(&mut rng, x.len(), 1.0);
    let at = |sign: f32| {
        let xs: Vec<f32> = x.iter().zip(&dx).map(|(x, d)| x + sign * h * d).collect();
        loss_of(&g, &loss, &params, &xs, &labels)
    };
    let numeric = (at(1.0) - at(-1.0)) / (2.0 * h as f64);
    let analytic: f64 = s
        .gradient(0)
        .iter()
        .zip(&dx)
        .map(|(g, d)| f64::from(g * d))
        .sum();
    assert!(
        (numeric - analytic).abs() <= 1e-2 * analytic.abs().max(1e-3),
        "input: numeric {numeric} analytic {analytic}"
    );
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let g = graph(EVERY_OP);
    let loss = Loss::new(LossSpec::SparseCategoricalCrossentropy, &g);
    let mut rng = Rng::new(4);
    let n = 7;
    let x = random(&mut rng, n * g.input_shape().elems(), 1.0);
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 4).collect();
    let params = ParamStore::init(&g, 5);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut s = Session::new(&g, loss.link);
            s.forward(&g, &params, &x, n, Mode::Train, &mut Rng::new(9));
            let mut grad = Vec::new();
            loss.evaluate(s.output(&g), s.logits(), &labels, Some(&mut grad));
            s.backward(&g, &params, &Plan::new(&g, &[]), &grad);
            (s.output(&g).to_vec(), s.param_grads.clone())
        })
    };
    let (out1, grads1) = run(1);
    let (out3, grads3) = run(3);
    assert_eq!(out1, out3);
    for (a, b) in grads1
        .tensors
        .iter()
        .flatten()
        .zip(grads3.tensors.iter().flatten())
    {
        for (a, b) in a.iter().zip(b) {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
        }
    }
}

#[test]
fn frozen_layers_get_no_weight_gradient() {
    let mut g = graph(EVERY_OP);
    g.freeze_up_to("add");
    let loss = Loss::new(LossSpec::SparseCategoricalCrossentropy, &g);
    let mut rng = Rng::new(2);
    let x = random(&mut rng, 2 * g.input_shape().elems(), 1.0);
    let params = ParamStore::init(&g, 1);
    let mut s = Session::new(&g, loss.link);
    s.forward(&g, &params, &x, 2, Mode::Train, &mut Rng::new(1));
    let mut grad = Vec::new();
    loss.evaluate(s.output(&g), s.logits(), &[0, 1], Some(&mut grad));
    let plan = Plan::new(&g, &[]);
    s.backward(&g, &params, &plan, &grad);
    let stem = g.node_by_name("stem").unwrap();
    assert!(
        s.param_grads.tensors[stem]
            .iter()
            .flatten()
            .all(|&v| v == 0.0)
    );
    assert!(
        s.gradient(stem).is_empty(),
        "nothing below the lowest trainable layer is back-propagated"
    );
    let last = g.output;
    assert!(
        s.param_grads.tensors[last]
            .iter()
            .flatten()
            .any(|&v| v != 0.0)
    );
}
