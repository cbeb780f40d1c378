//! Bad image-folder datasets and augmentation settings are reported before training starts,
//! with exit status 2, no panic, and what a person needs (the file, the place in it, the
//! folder, the valid values); a corrupt, truncated or non-image file in a dataset is skipped,
//! counted and named, and training goes on.
//!
//! Each case builds a small image folder under the system temp dir from real photographs
//! (crops of scikit-image's `chelsea` and `coffee`, fetched by `scripts/assets`) and writes a
//! model file beside it, so that relative paths in the file resolve into the folder.

mod common;

use std::path::{Path, PathBuf};

use cnntui::data::image::{Filter, Image, Rounding, resize};
use common::{Run, TempDir, cnntui, repo};

fn photo(name: &str) -> Image {
    let path = repo(&format!("assets/images/{name}"));
    Image::open(Path::new(&path)).expect("run scripts/assets to fetch the sample photographs")
}

/// `dir/NAME/CLASS/i.png|jpg`: `per_class` 20×20 crops of a photograph per class.
fn image_folder(dir: &Path, classes: &[(&str, &str)], per_class: usize) -> PathBuf {
    for (class, file) in classes {
        let src = photo(file);
        let class_dir = dir.join(class);
        std::fs::create_dir_all(&class_dir).expect("class dir");
        for i in 0..per_class {
            let (x, y) = (40 + 23 * i, 30 + 17 * i);
            let crop = src
                .crop(x, y, x + 60, y + 60)
                .expect("crop inside the photo");
            let small = resize(&crop, 20, 20, Filter::Bilinear, Rounding::Bytes).expect("resize");
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            small
                .save(&class_dir.join(format!("{i}.{ext}")))
                .expect("image written");
        }
    }
    dir.to_path_buf()
}

/// Writes `dir/model.ron`: a tiny convnet on 16×16 RGB with `units` outputs of `activation`,
/// trained with `loss` on `Folder(<data>)`, with `extra` appended to the train section.
fn model(
    dir: &Path,
    data: &str,
    units: usize,
    activation: &str,
    loss: &str,
    extra: &str,
) -> String {
    let source = format!(
        r#"Model(
    name: "tiny_folder",
    input: (16, 16, 3),
    layers: [
        Conv2D(filters: 4, kernel_size: 3, activation: ReLU),
        MaxPooling2D(pool_size: 2),
        Flatten(),
        Dense(units: {units}, activation: {activation}),
    ],
    train: (
        data: Folder({data}),
        loss: {loss},
        batch_size: 4,
        epochs: 1,
        {extra}
    ),
)
"#
    );
    let path = dir.join("model.ron");
    std::fs::write(&path, source).expect("model written");
    path.to_str().expect("UTF-8 temp path").to_string()
}

/// `cnntui train MODEL --headless --save DIR/runs`.
fn train(model: &str, dir: &TempDir) -> Run {
    cnntui(&["train", model, "--headless", "--save", &dir.path("runs")])
}

const TWO: [(&str, &str); 2] = [("cat", "chelsea.png"), ("coffee", "coffee.png")];
const SIZED: &str = r#"dir: "train", image_size: (16, 16)"#;

#[test]
fn corrupt_truncated_and_non_image_files_are_skipped_counted_and_named() {
    let tmp = TempDir::new("bad-image-data-corrupt");
    let folder = image_folder(&tmp.join("train"), &TWO, 4);
    let png = std::fs::read(folder.join("cat/0.png")).expect("png");
    std::fs::write(folder.join("cat/truncated.png"), &png[..png.len() / 3]).expect("write");
    std::fs::write(folder.join("coffee/notes.txt"), "not an image").expect("write");
    let jpg = std::fs::read(folder.join("coffee/1.jpg")).expect("jpg");
    std::fs::write(folder.join("coffee/cut.jpg"), &jpg[..jpg.len() / 2]).expect("write");
    std::fs::write(
        folder.join("coffee/corrupt.jpg"),
        [0xff, 0xd8, 0xff, 0x00, 1, 2, 3],
    )
    .expect("write");
    let m = model(
        &tmp.0,
        SIZED,
        2,
        "Softmax",
        "SparseCategoricalCrossentropy",
        "augment: (rotation_range: 20, horizontal_flip: true),",
    );
    train(&m, &tmp).assert_exit(
        0,
        &[
            "skipped 4 file(s)",
            "truncated.png",
            "notes.txt",
            "corrupt.jpg",
            "cut.jpg (truncated JPEG",
        ],
    );
}

#[test]
fn an_empty_class_folder_is_named() {
    let tmp = TempDir::new("bad-image-data-empty-class");
    image_folder(&tmp.join("train"), &TWO, 2);
    std::fs::create_dir_all(tmp.join("train/dog")).expect("dir");
    let m = model(
        &tmp.0,
        SIZED,
        3,
        "Softmax",
        "SparseCategoricalCrossentropy",
        "",
    );
    train(&m, &tmp).assert_exit(2, &["dog", "holds no readable image"]);
}

#[test]
fn one_class_for_a_categorical_loss_is_refused() {
    let tmp = TempDir::new("bad-image-data-one-class");
    image_folder(&tmp.join("train"), &TWO[..1], 2);
    let m = model(&tmp.0, SIZED, 1, "Softmax", "CategoricalCrossentropy", "");
    train(&m, &tmp).assert_exit(
        2,
        &[
            "model.ron",
            "1 class folder(s) ([cat])",
            "\"categorical\" needs at least 2",
        ],
    );
}

#[test]
fn a_label_mode_that_does_not_match_the_output_layer_is_named() {
    let tmp = TempDir::new("bad-image-data-label-mode-output");
    image_folder(&tmp.join("train"), &TWO, 2);
    let data = format!(r#"{SIZED}, label_mode: "binary""#);
    let m = model(&tmp.0, &data, 2, "Softmax", "BinaryCrossentropy", "");
    train(&m, &tmp).assert_exit(
        2,
        &[
            "label_mode \"binary\" need 1 output unit(s)",
            "`dense` has 2",
        ],
    );
}

#[test]
fn a_label_mode_that_does_not_match_the_loss_is_named() {
    let tmp = TempDir::new("bad-image-data-label-mode-loss");
    image_folder(&tmp.join("train"), &TWO, 2);
    let data = format!(r#"{SIZED}, label_mode: "categorical""#);
    let m = model(
        &tmp.0,
        &data,
        2,
        "Softmax",
        "SparseCategoricalCrossentropy",
        "",
    );
    train(&m, &tmp).assert_exit(
        2,
        &[
            "`train.data.label_mode` is \"categorical\"",
            "takes label_mode \"int\"",
        ],
    );
}

#[test]
fn an_image_size_that_does_not_match_the_input_is_named() {
    let tmp = TempDir::new("bad-image-data-image-size");
    image_folder(&tmp.join("train"), &TWO, 2);
    let m = model(
        &tmp.0,
        r#"dir: "train", image_size: (20, 20)"#,
        2,
        "Softmax",
        "SparseCategoricalCrossentropy",
        "",
    );
    train(&m, &tmp).assert_exit(
        2,
        &[
            "model.ron",
            "`train.data.image_size` (20, 20)",
            "[20, 20, 3]",
            "[16, 16, 3]",
        ],
    );
}

#[test]
fn an_unknown_interpolation_lists_the_valid_ones() {
    let tmp = TempDir::new("bad-image-data-interpolation");
    let data = format!(r#"{SIZED}, interpolation: "cubic""#);
    let m = model(
        &tmp.0,
        &data,
        2,
        "Softmax",
        "SparseCategoricalCrossentropy",
        "",
    );
    train(&m, &tmp).assert_exit(
        2,
        &[
            "model.ron",
            "`train.data.interpolation`",
            "\"cubic\"",
            "nearest, bilinear, bicubic, lanczos, area",
        ],
    );
}

#[test]
fn an_unknown_fill_mode_lists_the_valid_ones() {
    let tmp = TempDir::new("bad-image-data-fill-mode");
    let m = model(
        &tmp.0,
        SIZED,
        2,
        "Softmax",
        "SparseCategoricalCrossentropy",
        r#"augment: (fill_mode: "mirror"),"#,
    );
    train(&m, &tmp).assert_exit(
        2,
        &[
            "model.ron",
            "`train.augment.fill_mode`",
            "\"mirror\"",
            "nearest, constant, reflect, wrap",
        ],
    );
}

#[test]
fn out_of_range_augmentation_parameters_are_named() {
    for (augment, field, value) in [
        ("zoom_range: 1.5", "augment.zoom_range", "1.5"),
        ("rotation_range: -10", "augment.rotation_range", "-10"),
        ("shear_range: 90", "augment.shear_range", "90"),
        (
            "brightness_range: (1.2, 0.8)",
            "augment.brightness_range",
            "(1.2, 0.8)",
        ),
        (
            "width_shift_range: -0.1",
            "augment.width_shift_range",
            "-0.1",
        ),
    ] {
        let tmp = TempDir::new(&format!("bad-image-data-augment-{field}"));
        let extra = format!("augment: ({augment}),");
        let m = model(
            &tmp.0,
            SIZED,
            2,
            "Softmax",
            "SparseCategoricalCrossentropy",
            &extra,
        );
        train(&m, &tmp).assert_exit(2, &["model.ron", &format!("`train.{field}`"), value]);
    }
}

#[test]
fn a_missing_dataset_folder_is_named() {
    let tmp = TempDir::new("bad-image-data-missing");
    let m = model(
        &tmp.0,
        SIZED,
        2,
        "Softmax",
        "SparseCategoricalCrossentropy",
        "",
    );
    train(&m, &tmp).assert_exit(
        2,
        &[
            "train: not a directory",
            "one subdirectory of images per class",
        ],
    );
}

#[test]
fn validation_classes_that_differ_from_training_are_named() {
    let tmp = TempDir::new("bad-image-data-classes-differ");
    image_folder(&tmp.join("train"), &TWO, 2);
    image_folder(
        &tmp.join("val"),
        &[("cat", "chelsea.png"), ("dog", "coffee.png")],
        1,
    );
    let data = format!(r#"{SIZED}, validation_dir: "val""#);
    let m = model(
        &tmp.0,
        &data,
        2,
        "Softmax",
        "SparseCategoricalCrossentropy",
        "",
    );
    train(&m, &tmp).assert_exit(
        2,
        &["val: class folders [cat, dog] differ", "[cat, coffee]"],
    );
}
