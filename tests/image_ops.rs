//! cnntui's classic image operations against Pillow and scikit-image, on real photographs.
//!
//! The fixtures in `tests/fixtures/image_ops/` were written once by `make.py` beside them
//! (scikit-image 0.26.0, SciPy, NumPy, Pillow 13.0.0; the script says how each was made, the
//! crop boxes included); the photographs come from `scripts/assets`. Float fixtures are raw
//! little-endian `f32` on scikit-image's 0–1 scale. No Python is needed to run these tests.

use std::path::Path;

use cnntui::data::image::{
    Border, Canny, Gaussian, Image, SobelOutput, TvDenoise, canny, gaussian, grey, sobel,
    tv_denoise,
};

fn photo(name: &str) -> Image {
    Image::open(&Path::new("assets/images").join(name)).expect("run scripts/assets first")
}

fn fixture_png(name: &str) -> Image {
    Image::open(&Path::new("tests/fixtures/image_ops").join(name)).unwrap()
}

fn fixture_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(Path::new("tests/fixtures/image_ops").join(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The largest difference between `ours` (0–255 scale) and `theirs` (0–1 scale), on 0–1.
fn worst_difference(ours: &Image, theirs: &[f32]) -> f32 {
    assert_eq!(ours.data.len(), theirs.len(), "sizes differ");
    ours.data
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a / 255.0 - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn grey_matches_pillow_convert_l_byte_for_byte_on_chelsea() {
    let ours = grey(&photo("chelsea.png"));
    let pillow = fixture_png("grey_chelsea.png");
    assert_eq!((ours.width, ours.height, ours.channels), (451, 300, 1));
    let differing = ours
        .data
        .iter()
        .zip(&pillow.data)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing, 0,
        "{differing} of 135300 pixels differ from Pillow's"
    );
}

#[test]
fn gaussian_matches_skimage_on_a_colour_photo_and_with_a_kernel_size() {
    let crop = photo("chelsea.png").crop(140, 30, 240, 130).unwrap();
    let ours = gaussian(&crop, &Gaussian::new(2.0)).unwrap();
    let worst = worst_difference(&ours, &fixture_f32("gaussian_chelsea_s2.bin"));
    eprintln!("gaussian σ=2 on chelsea: worst difference {worst:e} (0–1 scale)");
    assert!(worst < 1e-6, "worst difference {worst}");

    let cam = photo("camera.png").crop(200, 100, 290, 180).unwrap();
    let g = Gaussian {
        kernel_size: Some(5),
        ..Gaussian::new(1.5)
    };
    let ours = gaussian(&cam, &g).unwrap();
    let worst = worst_difference(&ours, &fixture_f32("gaussian_camera_s1.5_k5.bin"));
    eprintln!("gaussian σ=1.5, 5 taps on camera: worst difference {worst:e}");
    assert!(worst < 1e-6, "worst difference {worst}");
    // The default border is scikit-image's `nearest`.
    assert_eq!(g.border, Border::Nearest);
}

#[test]
fn sobel_by_the_conv_kernel_matches_scipy_correlate_with_the_lecture_kernels() {
    let cam = photo("camera.png").crop(150, 200, 214, 264).unwrap();
    for (output, name) in [
        (SobelOutput::Vertical, "sobel_camera_vertical.bin"),
        (SobelOutput::Horizontal, "sobel_camera_horizontal.bin"),
    ] {
        let ours = sobel(&cam, output);
        let worst = worst_difference(&ours, &fixture_f32(name));
        assert!(worst < 1e-6, "{name}: worst difference {worst}");
    }
}

/// A fixture of 0–1 values as a 0–255 image.
fn image_from_f32(data: &[f32], width: usize, height: usize, channels: usize) -> Image {
    Image {
        width,
        height,
        channels,
        data: data.iter().map(|v| v * 255.0).collect(),
    }
}

#[test]
fn tv_denoise_matches_skimage_denoise_tv_chambolle_on_noisy_photos() {
    // Colour: chelsea, channel_axis=-1, weight 0.1.
    let noisy = fixture_f32("tv_chelsea_noisy.bin");
    let ours = tv_denoise(
        &image_from_f32(&noisy, 64, 64, 3),
        &TvDenoise {
            weight: 0.1,
            ..TvDenoise::default()
        },
    )
    .unwrap();
    let worst = worst_difference(&ours, &fixture_f32("tv_chelsea_w0.1.bin"));
    eprintln!("tv-denoise chelsea colour w=0.1: worst difference {worst:e} (0–1 scale)");
    assert!(worst < 1e-5, "worst difference {worst}");

    // Grey: camera, weight 0.2, one plane straight from the fixture (no 0–255 round trip).
    let noisy = fixture_f32("tv_camera_noisy.bin");
    let tv = TvDenoise {
        weight: 0.2,
        ..TvDenoise::default()
    };
    let (ours, passes) = tv.denoise_plane(&noisy, 64, 64);
    let skimage = fixture_f32("tv_camera_w0.2.bin");
    let worst = ours
        .iter()
        .zip(&skimage)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    eprintln!("tv-denoise camera w=0.2: {passes} passes, worst difference {worst:e}");
    assert!(worst < 1e-5, "worst difference {worst}");

    // Ended by max_num_iter = 50 rather than eps.
    let tv = TvDenoise {
        weight: 0.05,
        eps: 1e-9,
        max_num_iter: 50,
    };
    let (ours, passes) = tv.denoise_plane(&noisy, 64, 64);
    assert_eq!(passes, 50);
    let skimage = fixture_f32("tv_camera_w0.05_eps1e-9_it50.bin");
    let worst = ours
        .iter()
        .zip(&skimage)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    eprintln!("tv-denoise camera w=0.05, 50 passes: worst difference {worst:e}");
    assert!(worst < 1e-5, "worst difference {worst}");
}

/// The fraction of pixels on which two edge maps agree.
fn agreement(ours: &Image, theirs: &Image) -> f64 {
    assert_eq!((ours.width, ours.height), (theirs.width, theirs.height));
    let same = ours
        .data
        .iter()
        .zip(&theirs.data)
        .filter(|(a, b)| (**a > 127.0) == (**b > 127.0))
        .count();
    same as f64 / ours.data.len() as f64
}

#[test]
fn canny_agrees_with_skimage_feature_canny_on_camera_and_chelsea() {
    let ours = canny(&photo("camera.png"), &Canny::default()).unwrap();
    let a = agreement(&ours, &fixture_png("canny_camera_s1.png"));
    eprintln!("canny camera σ=1: {:.4}% of pixels equal", a * 100.0);
    assert!(a >= 0.999, "{:.4}% equal", a * 100.0);

    let params = Canny {
        sigma: 2.0,
        low_threshold: 20.0,
        high_threshold: 40.0,
    };
    let ours = canny(&photo("chelsea.png"), &params).unwrap();
    let a = agreement(&ours, &fixture_png("canny_chelsea_s2_20_40.png"));
    eprintln!(
        "canny chelsea σ=2, 20/40: {:.4}% of pixels equal",
        a * 100.0
    );
    assert!(a >= 0.999, "{:.4}% equal", a * 100.0);
}
