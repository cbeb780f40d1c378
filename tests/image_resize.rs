//! `cnntui`'s resampling against Pillow's, byte for byte, on a real photograph.
//!
//! The fixtures in `tests/fixtures/pil_resize/` were written by Pillow 13.0.0 from scikit-image's
//! `chelsea.png` (the script `make.py` beside them); the photograph comes from `scripts/assets`.

use std::path::Path;

use cnntui::data::image::{Filter, Image, Rounding, resize};

fn fixture(name: &str) -> Image {
    Image::open(&Path::new("tests/fixtures/pil_resize").join(name)).unwrap()
}

fn chelsea() -> Image {
    Image::open(Path::new("assets/images/chelsea.png")).unwrap()
}

fn assert_matches_pillow(ours: &Image, pillow: &Image, what: &str) {
    assert_eq!(
        (ours.width, ours.height),
        (pillow.width, pillow.height),
        "{what}"
    );
    let mut worst = 0.0f32;
    let mut differing = 0;
    for (a, b) in ours.data.iter().zip(&pillow.data) {
        worst = worst.max((a - b).abs());
        differing += usize::from(a != b);
    }
    assert!(
        worst == 0.0,
        "{what}: {differing} samples differ from Pillow's, by up to {worst}"
    );
}

#[test]
fn every_filter_matches_pillow_when_downsampling_upsampling_and_changing_aspect() {
    let src = chelsea();
    let crop = src.crop(150, 40, 190, 70).unwrap();
    for name in ["nearest", "bilinear", "bicubic", "lanczos", "area"] {
        let filter: Filter = name.parse().unwrap();
        for (kind, input, w, h) in [
            ("down", &src, 113, 75),
            ("square", &src, 150, 150),
            ("up", &crop, 97, 61),
        ] {
            let ours = resize(input, w, h, filter, Rounding::Bytes).unwrap();
            assert_matches_pillow(
                &ours,
                &fixture(&format!("{kind}_{name}.png")),
                &format!("{kind} {name}"),
            );
        }
    }
}
