//! Fashion-MNIST (from `scripts/assets`, the Debian package `dataset-fashion-mnist`) is IDX like
//! MNIST: the IDX loader reads it, with ten classes, and the experiment's model files accept it.

use std::path::Path;

use cnntui::data::load_idx_dir;
use cnntui::runtime::setup::{Overrides, prepare};

#[test]
fn the_idx_loader_reads_fashion_mnist_with_ten_classes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist");
    let splits = load_idx_dir(&dir, 1.0).expect("run scripts/assets to fetch Fashion-MNIST");
    assert_eq!((splits.train.len(), splits.test.len()), (60_000, 10_000));
    assert_eq!((splits.train.classes, splits.test.classes), (10, 10));
    assert_eq!(splits.train.shape, [28, 28, 1]);
    let max = splits.train.images.iter().copied().fold(0.0f32, f32::max);
    assert_eq!(max, 255.0, "values stay on the 0–255 scale until rescaled");
}

#[test]
fn the_small_data_models_train_on_the_first_2000_images_and_test_on_all() {
    for model in [
        "models/fashion_small.ron",
        "models/fashion_small_augmented.ron",
    ] {
        let save = std::env::temp_dir().join(format!("cnntui-fashion-{}", std::process::id()));
        let overrides = Overrides {
            save: Some(save.clone()),
            ..Overrides::default()
        };
        let prepared = prepare(Path::new(model), &overrides).expect(model);
        let data = &prepared.trainer.data;
        assert_eq!(data.train.len(), 2000, "{model}");
        assert_eq!(data.test.as_ref().map(|t| t.len()), Some(10_000), "{model}");
        assert_eq!(
            data.augment.is_some(),
            model.contains("augmented"),
            "{model}"
        );
        let _ = std::fs::remove_dir_all(&save);
    }
}
