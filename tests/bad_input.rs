//! Bad input is reported, not panicked on: every case runs the real `cnntui` binary on a model,
//! data directory, checkpoint or flag that is wrong and asserts exit status 2, no panic, and the
//! parts of the message a person needs to fix it (the file, line:column, the layer, the shapes,
//! the suggestion).
//!
//! Model fixtures live in `tests/fixtures/invalid_models/` (one file per case, a comment on top
//! says what is wrong); corrupt IDX files in `tests/fixtures/idx/`; bad checkpoints in
//! `tests/fixtures/bad_checkpoints/`. Data directories that mix real MNIST files with a bad one
//! are built per test under `std::env::temp_dir()`.

mod common;

use std::path::{Path, PathBuf};

use common::{Run, TempDir, cnntui, repo};

/// `cnntui summary MODEL`.
fn summary(model: &str) -> Run {
    cnntui(&["summary", model])
}

/// `cnntui train MODEL --headless --save DIR EXTRA...`.
fn train(model: &str, save: &Path, extra: &[&str]) -> Run {
    let save = save.to_str().expect("temp paths are UTF-8");
    let mut args = vec!["train", model, "--headless", "--save", save];
    args.extend_from_slice(extra);
    cnntui(&args)
}

/// Checks only this file makes.
impl Run {
    /// An extra condition on the message, reported like the others.
    #[track_caller]
    fn assert_that(&self, ok: bool, what: &str) -> &Self {
        if !ok {
            self.report(&[what.to_string()]);
        }
        self
    }

    /// Whether `n` appears in stderr as a whole number (not as a digit of a larger one).
    fn mentions_number(&self, n: u64) -> bool {
        self.stderr
            .split(|c: char| !c.is_ascii_digit())
            .any(|t| t == n.to_string())
    }
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Writes `dir/model.ron`: models/mnist.ron reading its data from `dir/data` (a relative path
/// in a model file resolves against the file's directory first).
fn mnist_model_reading(dir: &Path) -> PathBuf {
    let source = std::fs::read_to_string(repo("models/mnist.ron")).expect("models/mnist.ron");
    let from = r#"Idx(dir: "data/mnist")"#;
    assert!(
        source.contains(from),
        "models/mnist.ron no longer reads `{from}`"
    );
    let model = dir.join("model.ron");
    std::fs::write(&model, source.replace(from, r#"Idx(dir: "data")"#)).expect("model written");
    model
}

/// A data directory `dir/data` holding the real MNIST files except `replace`, which is the bad
/// `fixture` from tests/fixtures/idx/ under that name (the `.gz` form of the real file is left
/// out, so the bad one is the one read), or is missing when `fixture` is `None`.
fn mnist_data_with(dir: &Path, replace: &[&str], fixture: Option<&str>) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    for entry in std::fs::read_dir(repo("data/mnist")).expect("data/mnist exists") {
        let entry = entry.expect("data/mnist entry");
        let name = entry.file_name().into_string().expect("UTF-8 file name");
        let stem = name.strip_suffix(".gz").unwrap_or(&name);
        if name.contains("idx") && !replace.contains(&stem) {
            std::fs::copy(entry.path(), data.join(&name)).expect("copy MNIST file");
        }
    }
    if let Some(fixture) = fixture {
        let target = data.join(if fixture.ends_with(".gz") {
            format!("{}.gz", replace[0])
        } else {
            replace[0].to_string()
        });
        std::fs::copy(repo(&format!("tests/fixtures/idx/{fixture}")), &target)
            .expect("copy fixture");
        return target;
    }
    data
}

/// An unsigned-byte IDX file: magic 0x0000080N (N = number of dimensions), dims, bytes.
fn write_idx(path: &Path, dims: &[u32], bytes: &[u8]) {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(bytes);
    std::fs::write(path, out).expect("IDX file written");
}

/// A small made-up MNIST-shaped dataset in `dir/data` (64 training and 16 test images of
/// 28×28, labels 0..=9), so that writing a checkpoint of the MNIST architecture takes a
/// fraction of a second instead of validating on the 10,000 real test images.
fn tiny_mnist_data(dir: &Path) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    for (split, n) in [("train", 64u32), ("t10k", 16)] {
        let pixels: Vec<u8> = (0..n * 28 * 28).map(|i| (i * 37 % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write_idx(
            &data.join(format!("{split}-images-idx3-ubyte")),
            &[n, 28, 28],
            &pixels,
        );
        write_idx(
            &data.join(format!("{split}-labels-idx1-ubyte")),
            &[n],
            &labels,
        );
    }
}

// ---- the model language --------------------------------------------------------------------

#[test]
fn syntax_error_shows_file_line_column_and_the_line_with_a_caret() {
    let model = "tests/fixtures/invalid_models/syntax_missing_comma.ron";
    let run = summary(model);
    run.assert_bad_input(&[model, "comma"]);

    // `FILE:LINE:COLUMN`, then the offending source line with a caret under COLUMN.
    let place = run.stderr.split(&format!("{model}:")).nth(1).unwrap_or("");
    let mut nums = place
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .map(|t| t.parse::<usize>().ok());
    let (line, column) = match (nums.next().flatten(), nums.next().flatten()) {
        (Some(l), Some(c)) => (l, c),
        _ => {
            run.report(&[format!("no `{model}:LINE:COLUMN` in stderr")]);
            unreachable!()
        }
    };
    // The comma is missing at the end of line 6; a parser notices it there or at line 7.
    run.assert_that(
        (6..=7).contains(&line),
        "the place is not line 6 or 7, where the comma is missing",
    );
    let source = std::fs::read_to_string(repo(model)).expect("fixture");
    let text = source.lines().nth(line - 1).expect("line in file");
    let lines: Vec<&str> = run.stderr.lines().collect();
    let at = lines.iter().position(|l| l.ends_with(text));
    run.assert_that(at.is_some(), "stderr does not quote the offending line");
    let at = at.unwrap_or_default();
    let text_start = lines[at].len() - text.len();
    let caret = lines.get(at + 1).and_then(|l| l.find('^'));
    run.assert_that(
        caret == Some(text_start + column - 1),
        "the caret is not under the reported column",
    );
}

#[test]
fn unknown_layer_type_lists_the_valid_ones_and_suggests_conv2d() {
    let model = "tests/fixtures/invalid_models/unknown_layer_conv3d.ron";
    summary(model).assert_bad_input(&[
        &format!("{model}:6:9"),
        "Conv3D",
        "DepthwiseConv2D",
        "Dense",
        "MaxPooling2D",
        "Flatten",
        "BatchNormalization",
        "Add",
        "did you mean `Conv2D`",
    ]);
}

#[test]
fn unknown_field_suggests_filters() {
    let model = "tests/fixtures/invalid_models/unknown_field_filter.ron";
    summary(model).assert_bad_input(&[
        &format!("{model}:6:16"),
        "`filter`",
        "Conv2D",
        "did you mean `filters`",
    ]);
}

#[test]
fn dense_on_a_4d_tensor_names_the_layer_the_shape_and_flatten() {
    let model = "tests/fixtures/invalid_models/dense_without_flatten.ron";
    summary(model).assert_bad_input(&[
        model,
        "classifier",
        "Dense",
        "(None, 26, 26, 32)",
        "Flatten()",
    ]);
}

#[test]
fn kernel_larger_than_its_input_names_the_layer_and_shape() {
    let model = "tests/fixtures/invalid_models/kernel_larger_than_input.ron";
    summary(model).assert_bad_input(&[
        model,
        "too_big",
        "Conv2D",
        "(None, 5, 5, 1)",
        "7×7",
        "Same",
    ]);
}

#[test]
fn pool_that_shrinks_a_side_to_zero_names_the_layer_and_shape() {
    let model = "tests/fixtures/invalid_models/pool_shrinks_to_zero.ron";
    summary(model).assert_bad_input(&[
        model,
        "pool_to_zero",
        "MaxPooling2D",
        "(None, 1, 1, 16)",
        "2×2",
    ]);
}

#[test]
fn add_of_different_shapes_names_both_inputs_and_both_shapes() {
    let model = "tests/fixtures/invalid_models/add_shape_mismatch.ron";
    summary(model).assert_bad_input(&[
        model,
        "sum",
        "narrow",
        "(None, 26, 26, 16)",
        "wide",
        "(None, 26, 26, 32)",
    ]);
}

#[test]
fn zero_filters_names_the_layer_and_the_field() {
    let model = "tests/fixtures/invalid_models/zero_filters.ron";
    let run = summary(model);
    run.assert_bad_input(&[model, "empty_conv", "`filters`", "at least 1"]);
    run.assert_that(
        run.mentions_number(0),
        "the message does not show the value 0",
    );
}

#[test]
fn negative_kernel_size_names_the_layer_and_the_value() {
    let model = "tests/fixtures/invalid_models/negative_kernel_size.ron";
    summary(model).assert_bad_input(&[
        model,
        "backwards_conv",
        "`kernel_size`",
        "-3",
        "at least 1",
    ]);
}

#[test]
fn zero_units_names_the_layer_and_the_field() {
    let model = "tests/fixtures/invalid_models/zero_units.ron";
    let run = summary(model);
    run.assert_bad_input(&[model, "no_units", "`units`", "at least 1"]);
    run.assert_that(
        run.mentions_number(0),
        "the message does not show the value 0",
    );
}

#[test]
fn duplicate_layer_names_name_the_duplicate() {
    let model = "tests/fixtures/invalid_models/duplicate_layer_names.ron";
    summary(model).assert_bad_input(&[model, "`features`", "unique"]);
}

#[test]
fn inputs_naming_a_missing_layer_suggest_the_nearest() {
    let model = "tests/fixtures/invalid_models/missing_input_reference.ron";
    summary(model).assert_bad_input(&[model, "flat", "`conv_1`", "did you mean `conv1`"]);
}

#[test]
fn a_cycle_in_inputs_names_the_layers_of_the_cycle_only() {
    let model = "tests/fixtures/invalid_models/inputs_cycle.ron";
    let run = summary(model);
    run.assert_bad_input(&[model, "cycle", "branch_a", "branch_b"]);
    // `flatten` and `dense` read the cycle's output but are not part of it: listing them as
    // "these layers form a cycle" sends the reader to the wrong layers.
    let cycle_line = run
        .stderr
        .lines()
        .find(|l| l.contains("cycle"))
        .unwrap_or("");
    run.assert_that(
        !cycle_line.contains("flatten") && !cycle_line.contains("dense"),
        "the cycle lists `flatten`/`dense`, which only depend on the cycle (branch_a ↔ branch_b)",
    );
}

#[test]
fn a_model_file_that_does_not_exist_is_named() {
    let model = "tests/fixtures/invalid_models/no_such_model.ron";
    assert!(!Path::new(&repo(model)).exists());
    let run = summary(model);
    run.assert_bad_input(&[model]);
    let s = run.stderr.to_lowercase();
    run.assert_that(
        s.contains("no such file") || s.contains("does not exist") || s.contains("not found"),
        "the message does not say that the file does not exist",
    );
    let tmp = TempDir::new("bad-input-no-model");
    train(model, &tmp.join("run"), &[]).assert_bad_input(&[model]);
}

#[test]
fn freeze_up_to_an_unknown_layer_names_it_and_the_layers_there_are() {
    let model = "tests/fixtures/invalid_models/freeze_unknown_layer.ron";
    let run = summary(model);
    run.assert_bad_input(&[model, "UpTo(\"nope\")"]);
    // "nope" is near no layer name, so the fix is to show the names there are (or where to see
    // them): the model's layers are conv2d, flatten and dense.
    run.assert_that(
        (run.stderr.contains("conv2d") && run.stderr.contains("dense"))
            || run.stderr.contains("cnntui summary"),
        "the message neither lists the model's layer names nor says where to see them",
    );
}

// ---- data ----------------------------------------------------------------------------------

#[test]
fn a_data_dir_missing_files_names_the_dir_and_the_files() {
    let tmp = TempDir::new("bad-input-missing-files");
    let data = mnist_data_with(
        &tmp.0,
        &["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
        None,
    );
    let model = mnist_model_reading(&tmp.0);
    let run = train(
        utf8(&model),
        &tmp.join("run"),
        &["--epochs", "1", "--limit", "64"],
    );
    run.assert_bad_input(&[
        utf8(&data),
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]);
    run.assert_that(!run.stdout.contains("Epoch 1/"), "training started");
}

#[test]
fn truncated_idx_images_name_the_file() {
    let tmp = TempDir::new("bad-input-truncated");
    let bad = mnist_data_with(
        &tmp.0,
        &["train-images-idx3-ubyte"],
        Some("truncated-images-idx3-ubyte"),
    );
    let model = mnist_model_reading(&tmp.0);
    let run = train(
        utf8(&model),
        &tmp.join("run"),
        &["--epochs", "1", "--limit", "64"],
    );
    run.assert_bad_input(&[utf8(&bad), "truncated"]);
    run.assert_that(
        run.mentions_number(800) && run.mentions_number(216),
        "the message lacks the expected and found sizes",
    );
}

#[test]
fn idx_with_the_wrong_magic_names_the_file() {
    let tmp = TempDir::new("bad-input-wrong-magic");
    let bad = mnist_data_with(
        &tmp.0,
        &["train-labels-idx1-ubyte"],
        Some("wrong-magic-labels-idx1-ubyte"),
    );
    let model = mnist_model_reading(&tmp.0);
    let run = train(
        utf8(&model),
        &tmp.join("run"),
        &["--epochs", "1", "--limit", "64"],
    );
    run.assert_bad_input(&[utf8(&bad), "label", "0x00000803"]);
}

#[test]
fn corrupt_gzip_names_the_file() {
    let tmp = TempDir::new("bad-input-corrupt-gzip");
    let bad = mnist_data_with(
        &tmp.0,
        &["t10k-labels-idx1-ubyte"],
        Some("corrupt-labels-idx1-ubyte.gz"),
    );
    let model = mnist_model_reading(&tmp.0);
    let run = train(
        utf8(&model),
        &tmp.join("run"),
        &["--epochs", "1", "--limit", "64"],
    );
    run.assert_bad_input(&[utf8(&bad), "gzip"]);
}

#[test]
fn labels_beyond_the_output_layer_name_the_layer_and_the_max_label() {
    let tmp = TempDir::new("bad-input-labels");
    let model = "tests/fixtures/invalid_models/labels_out_of_range.ron";
    let run = train(model, &tmp.join("run"), &["--epochs", "1", "--limit", "64"]);
    run.assert_bad_input(&[model, "`dense_1`"]);
    run.assert_that(
        run.mentions_number(9),
        "the message does not show the largest label, 9",
    );
    run.assert_that(
        run.mentions_number(5),
        "the message does not show the layer's 5 units",
    );
    run.assert_that(
        run.mentions_number(10),
        "the message does not suggest 10 units",
    );
    run.assert_that(!run.stdout.contains("Epoch 1/"), "training started");
}

// ---- checkpoints ---------------------------------------------------------------------------

#[test]
fn resuming_a_checkpoint_of_another_model_names_the_tensor_and_both_shapes() {
    let tmp = TempDir::new("bad-input-resume-mismatch");
    tiny_mnist_data(&tmp.0);
    let mnist = mnist_model_reading(&tmp.0);
    let first = tmp.join("first");
    let run = train(
        utf8(&mnist),
        &first,
        &["--epochs", "1", "--limit", "64", "--batch-size", "64"],
    );
    assert_eq!(
        run.code,
        Some(0),
        "writing the checkpoint failed:\n{}",
        run.stderr
    );
    let ckpt = first.join("checkpoint.safetensors");
    assert!(ckpt.is_file(), "no checkpoint at {}", ckpt.display());

    let model = "tests/fixtures/invalid_models/checkpoint_dense_32.ron";
    let run = train(
        model,
        &tmp.join("second"),
        &["--epochs", "1", "--limit", "64", "--resume", utf8(&ckpt)],
    );
    run.assert_bad_input(&[utf8(&ckpt), "`dense/kernel`", "[576, 64]", "[576, 32]"]);
    run.assert_that(!run.stdout.contains("Epoch 1/"), "training started");
}

#[test]
fn resuming_a_file_that_is_not_safetensors_is_a_clear_message() {
    let tmp = TempDir::new("bad-input-resume-text");
    let ckpt = "tests/fixtures/bad_checkpoints/not_safetensors.safetensors";
    let run = train(
        "models/mnist.ron",
        &tmp.join("run"),
        &["--epochs", "1", "--limit", "64", "--resume", ckpt],
    );
    run.assert_bad_input(&[ckpt, "safetensors"]);
    run.assert_that(!run.stdout.contains("Epoch 1/"), "training started");
}

// ---- the command line ----------------------------------------------------------------------

#[test]
fn an_unwritable_save_dir_is_reported_before_training() {
    for save in ["Cargo.toml/sub", "/proc/forbidden"] {
        let run = train(
            "models/mnist.ron",
            Path::new(save),
            &["--epochs", "1", "--limit", "64"],
        );
        run.assert_bad_input(&[save, "--save"]);
        run.assert_that(
            !run.stdout.contains("Epoch 1/"),
            "training started before the save dir was checked",
        );
    }
}

/// `cnntui train models/mnist.ron FLAG 0` fails, naming FLAG: the value came from the command
/// line, so a message about a `train.*` field of the model file points at the wrong place.
#[track_caller]
fn zero_flag_is_named(flag: &str) {
    let tmp = TempDir::new(&format!("bad-input-{}", flag.trim_start_matches('-')));
    let run = train("models/mnist.ron", &tmp.join("run"), &[flag, "0"]);
    run.assert_bad_input(&[flag, "at least 1"]);
    run.assert_that(!run.stdout.contains("Epoch 1/"), "training started");
}

#[test]
fn zero_threads_names_the_flag() {
    zero_flag_is_named("--threads");
}

#[test]
fn zero_epochs_names_the_flag() {
    zero_flag_is_named("--epochs");
}

#[test]
fn zero_limit_names_the_flag() {
    zero_flag_is_named("--limit");
}

#[test]
fn zero_batch_size_names_the_flag() {
    zero_flag_is_named("--batch-size");
}
