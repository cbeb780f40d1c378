//! Real weights, golden values from PyTorch: torchvision's MobileNetV2 ImageNet weights (the
//! legacy `.pth` that `scripts/assets` fetches) in `models/mobilenet_v2.ron`, and a narrow VGG16
//! (tests/fixtures/weights/, written by `make.py` there) in PyTorch's zip format with
//! torchvision's names and in safetensors with timm's — each on the JIT and the reference
//! backends.

use std::path::Path;

use cnntui::data::image::Image;
use cnntui::ir::{self, Graph};
use cnntui::passes::{Target, optimize};
use cnntui::runtime::{Backend, Mode, OutputLink, ParamStore, Rng, Session};
use cnntui::weights::{self, Dtype, Format, Preprocessing, WeightsFile, normalise_imagenet};

const MOBILENET: &str = "models/mobilenet_v2.ron";
const MOBILENET_WEIGHTS: &str = "assets/weights/mobilenet_v2-b0353104.pth";
const BACKENDS: [Backend; 2] = [Backend::Jit, Backend::Reference];

fn inference_graph(model: &str) -> Graph {
    let mut g = ir::load(Path::new(model)).expect("the model loads");
    optimize(
        &mut g,
        &Target {
            training: false,
            requested: vec![],
        },
    )
    .expect("optimizes");
    g
}

/// A model with `weights` loaded, ready to run.
fn loaded(model: &str, weights: &str) -> (Graph, ParamStore) {
    let g = inference_graph(model);
    let mut params = ParamStore::init(&g, 0);
    let (warnings, _) = weights::load_for_model(&g, &mut params.tensors, Some(Path::new(weights)))
        .expect("the weights fit");
    assert!(warnings.is_empty(), "{warnings:?}");
    (g, params)
}

/// The pre-softmax scores for one input.
fn logits(g: &Graph, params: &ParamStore, x: &[f32], backend: Backend) -> Vec<f32> {
    let mut s = Session::new(g, OutputLink::Logits).with_backend(backend);
    s.forward(g, params, x, 1, Mode::Infer, &mut Rng::new(0));
    s.logits().to_vec()
}

#[track_caller]
fn assert_close(what: &str, got: f32, want: f32, tol: f32) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, PyTorch {want} (tolerance {tol})"
    );
}

#[test]
fn the_legacy_mobilenet_file_lists_torchvisions_314_tensors() {
    let f = WeightsFile::open(Path::new(MOBILENET_WEIGHTS)).expect("opens");
    assert_eq!(f.format, Format::TorchLegacy);
    assert_eq!(f.tensors.len(), 314);
    let first = &f.tensors[0];
    assert_eq!(first.name, "features.0.0.weight");
    assert_eq!(first.shape, vec![32, 3, 3, 3]);
    assert_eq!(first.dtype, Dtype::F32);
    let nbt = f
        .tensor("features.0.1.num_batches_tracked")
        .expect("present");
    assert_eq!(nbt.dtype, Dtype::I64);
    let last = f.tensors.last().expect("tensors");
    assert_eq!(
        (last.name.as_str(), last.shape.as_slice()),
        ("classifier.1.bias", &[1000][..])
    );
}

// Golden values: torchvision 0.29 / PyTorch 2.15 on this machine (REFERENCE.md):
//
//     m = torchvision.models.mobilenet_v2()
//     m.load_state_dict(torch.load("assets/weights/mobilenet_v2-b0353104.pth")); m.eval()
//     z = m(torch.zeros(1, 3, 224, 224))[0]
//     z.argmax(), z.max(), z[:5]   # 111, 3.4371, [-0.2259, 0.5897, -0.1021, -0.0379, 0.0679]
//
// The issue gives −0.2258 and 0.5898 for the first two (another run of PyTorch); 1e-3 covers
// both.
#[test]
fn mobilenet_v2_on_an_all_zero_input_gives_pytorchs_logits_on_both_backends() {
    let (g, params) = loaded(MOBILENET, MOBILENET_WEIGHTS);
    let x = vec![0.0f32; 224 * 224 * 3];
    for backend in BACKENDS {
        let z = logits(&g, &params, &x, backend);
        assert_eq!(z.len(), 1000);
        let argmax = (0..1000)
            .max_by(|&a, &b| z[a].total_cmp(&z[b]))
            .unwrap_or(0);
        assert_eq!(argmax, 111, "{backend:?}: argmax");
        assert_close(&format!("{backend:?} max logit"), z[111], 3.4371, 1e-3);
        for (i, want) in [-0.2258f32, 0.5898, -0.1021, -0.0379, 0.0679]
            .into_iter()
            .enumerate()
        {
            assert_close(&format!("{backend:?} logit {i}"), z[i], want, 1e-3);
        }
    }
}

// Golden values from PyTorch, on chelsea cropped without resizing:
//
//     img = PIL.Image.open("assets/images/chelsea.png").convert("RGB").crop((113, 38, 337, 262))
//     x = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])(img)[None]
//     m(x)[0].topk(5)   # 285 19.396, 282 18.440, 281 17.665, 287 14.826, 622 10.961
#[test]
fn mobilenet_v2_on_chelsea_gives_pytorchs_top5_logits_on_both_backends() {
    let (g, params) = loaded(MOBILENET, MOBILENET_WEIGHTS);
    let cat = Image::open(Path::new("assets/images/chelsea.png"))
        .expect("run scripts/assets")
        .crop(113, 38, 337, 262)
        .expect("inside");
    let x = normalise_imagenet(&cat);
    let want = [
        (285, 19.396f32),
        (282, 18.440),
        (281, 17.665),
        (287, 14.826),
        (622, 10.961),
    ];
    for backend in BACKENDS {
        let z = logits(&g, &params, &x, backend);
        let mut order: Vec<usize> = (0..z.len()).collect();
        order.sort_by(|&a, &b| z[b].total_cmp(&z[a]));
        let top: Vec<usize> = order[..5].to_vec();
        assert_eq!(
            top,
            want.map(|(i, _)| i).to_vec(),
            "{backend:?}: top-5 classes"
        );
        for (i, v) in want {
            assert_close(&format!("{backend:?} logit {i}"), z[i], v, 1e-3);
        }
    }
}

const NARROW: &str = "tests/fixtures/weights/narrow_vgg16.ron";

/// The input `make.py` feeds PyTorch, in HWC: ((7h + 13w + 29c) mod 17) / 8 − 1.
fn narrow_input() -> Vec<f32> {
    let mut x = Vec::with_capacity(64 * 64 * 3);
    for h in 0..64 {
        for w in 0..64 {
            for c in 0..3 {
                x.push(((7 * h + 13 * w + 29 * c) % 17) as f32 / 8.0 - 1.0);
            }
        }
    }
    x
}

fn narrow_expected() -> Vec<f32> {
    let text = std::fs::read_to_string("tests/fixtures/weights/expected.json").expect("fixture");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    v["logits"]
        .as_array()
        .expect("logits")
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN) as f32)
        .collect()
}

// Expected logits: written by tests/fixtures/weights/make.py with PyTorch 2.15 (VGG16's
// structure via torchvision's `make_layers`, channels / 16, kaiming-normal weights, seed 0):
//
//     /work/venv/bin/python tests/fixtures/weights/make.py
//
// At 64×64 the first dense layer reads a 2×2×32 map, so a wrong flatten order fails this.
#[test]
fn a_narrow_vgg16_matches_pytorch_from_torchvision_names_and_timm_names_on_both_backends() {
    let want = narrow_expected();
    let x = narrow_input();
    for file in [
        "tests/fixtures/weights/narrow_vgg16.pth",
        "tests/fixtures/weights/narrow_vgg16_timm.safetensors",
    ] {
        let (g, params) = loaded(NARROW, file);
        for backend in BACKENDS {
            let z = logits(&g, &params, &x, backend);
            assert_eq!(z.len(), want.len());
            for (i, (&a, &b)) in z.iter().zip(&want).enumerate() {
                assert_close(&format!("{file} {backend:?} logit {i}"), a, b, 1e-3);
            }
        }
    }
}

#[test]
fn the_first_dense_layer_is_permuted_from_chw_to_hwc() {
    let g = inference_graph(NARROW);
    let f = WeightsFile::open(Path::new("tests/fixtures/weights/narrow_vgg16.pth")).expect("opens");
    assert_eq!(f.format, Format::TorchZip);
    let m = weights::map(&g, &f, None).expect("fits");
    let fc1 = g.node_by_name("fc1").expect("fc1");
    let a = m
        .assignments
        .iter()
        .find(|a| a.node == fc1 && a.param == 0)
        .expect("fc1 kernel assigned");
    assert_eq!(f.tensors[a.tensor].name, "classifier.0.weight");
    assert_eq!(a.layout, weights::Layout::LinearChw { h: 2, w: 2, c: 32 });
}

#[test]
fn a_cnntui_checkpoint_round_trips_by_name_with_its_preprocessing() {
    // Loading the narrow VGG from PyTorch, saving it as a cnntui checkpoint (as training does,
    // recording the preprocessing) and loading that by name gives the same parameters and
    // torchvision's preprocessing.
    let (g, params) = loaded(NARROW, "tests/fixtures/weights/narrow_vgg16.pth");
    let dir = std::env::temp_dir().join(format!("cnntui-weights-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("narrow.safetensors");
    let opt = cnntui::runtime::Optimizer::new(cnntui::model::OptimizerSpec::default(), &g);
    let torchvision = Preprocessing::torchvision(64, 64);
    let state = cnntui::runtime::checkpoint::TrainState {
        preprocessing: serde_json::to_string(&torchvision).ok(),
        ..Default::default()
    };
    cnntui::runtime::checkpoint::save(&path, &g, &params, &opt, &state).expect("saves");
    let mut again = ParamStore::init(&g, 1);
    let (warnings, pre) =
        weights::load_for_model(&g, &mut again.tensors, Some(&path)).expect("loads");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(pre, Some(torchvision));
    assert_eq!(again, params);
    let _ = std::fs::remove_dir_all(&dir);
}
