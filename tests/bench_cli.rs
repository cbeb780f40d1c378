//! `cnntui bench --json`: the object issue 3 names, with its fields and their meaning (never
//! how fast: speed is shown by benchmarks, not by tests).

mod common;

use common::cnntui;

fn bench_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bench", "models/mnist.ron", "--json", "--seconds", "0.05"];
    all.extend_from_slice(args);
    let run = cnntui(&all);
    run.assert_ok();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}):\n{}", run.what, run.stdout))
}

#[test]
fn training_figures_name_every_layer_and_the_baselines() {
    let v = bench_json(&[
        "--mode",
        "train",
        "--batch",
        "4",
        "--threads",
        "2",
        "--baselines",
    ]);
    assert_eq!(v["mode"], "train");
    assert_eq!(v["batch"], 4);
    assert_eq!(v["threads"], 2);
    for key in ["compile_ms", "samples_per_s", "gflops", "peak_rss_mb"] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }
    let layers = v["layers"].as_array().expect("layers");
    let names: Vec<&str> = layers.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "conv2d",
            "max_pooling2d",
            "conv2d_1",
            "max_pooling2d_1",
            "conv2d_2",
            "flatten",
            "dense",
            "dense_1"
        ]
    );
    for l in layers {
        for key in ["type", "fused", "forward_ms", "backward_ms", "gflops"] {
            assert!(l.get(key).is_some(), "layer {} has no {key}", l["name"]);
        }
    }
    assert_eq!(layers[0]["fused"], "ConvBiasReluMaxPool");
    assert!(
        layers[0]["backward_ms"].as_f64().is_some(),
        "training times the backward"
    );
    // Which passes run by Winograd: none of the first conv (one input channel), all three
    // of the second.
    assert_eq!(layers[0]["winograd"], serde_json::json!([]));
    assert_eq!(
        layers[2]["winograd"],
        serde_json::json!(["forward", "input_grad", "weight_grad"])
    );
    for b in ["unfused_jit", "reference", "im2col_ndarray"] {
        let s = &v["baselines"][b]["samples_per_s"];
        assert!(s.as_f64().is_some_and(|x| x > 0.0), "baseline {b}: {s}");
    }
    // Both pooled groups compared, fused and unfused timed side by side.
    let fusion = v["fusion"].as_array().expect("fusion rows");
    assert_eq!(fusion.len(), 2);
    for f in fusion {
        assert!(f["fused_ms"].as_f64().is_some_and(|x| x > 0.0));
        assert!(f["unfused_ms"].as_f64().is_some_and(|x| x > 0.0));
    }
}

#[test]
fn inference_has_no_backward_and_no_baselines_unless_asked() {
    let v = bench_json(&["--batch", "3"]);
    assert_eq!(v["mode"], "infer");
    assert_eq!(v["batch"], 3);
    assert!(v.get("baselines").is_none());
    let layers = v["layers"].as_array().expect("layers");
    assert!(layers.iter().all(|l| l["backward_ms"].is_null()));
}

#[test]
fn bad_options_are_refused_with_the_fix() {
    cnntui(&["bench", "models/mnist.ron", "--batch", "0"]).assert_exit(2, &["--batch"]);
    cnntui(&["bench", "models/mnist.ron", "--seconds", "0"]).assert_exit(2, &["--seconds"]);
}
