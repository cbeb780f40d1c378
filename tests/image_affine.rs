//! `cnntui image affine` against Keras 3.15's `apply_affine_transform`, on real photographs.
//!
//! The fixtures in `tests/fixtures/keras_affine/` were written once by `make.py` beside them
//! (Keras 3.15.1 with the JAX backend, SciPy 1.17.1, Pillow 13): three photographs from
//! scikit-image (`chelsea`, `coffee`, `astronaut`), downscaled with Pillow — `chelsea` and
//! `coffee` not square, so that Keras's centring convention is exercised — and, for each, six
//! warps covering every fill mode and rotation, shift, shear and zoom together (`cases.txt`
//! lists the parameters). Keras's float outputs were rounded to 8 bits; ours are too, so the
//! two may differ by one step where a value lies near a half. The test needs no Python.

use std::path::Path;
use std::process::Command;

use cnntui::data::image::Image;

const FIXTURES: &str = "tests/fixtures/keras_affine";

#[test]
fn image_affine_matches_keras_apply_affine_transform_on_photographs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = std::fs::read_to_string(root.join(FIXTURES).join("cases.txt")).unwrap();
    let out_dir = std::env::temp_dir().join(format!("cnntui-affine-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for line in cases.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [image, case, theta, tx, ty, shear, zx, zy, fill, cval] = f[..] else {
            panic!("bad line in cases.txt: {line}");
        };
        let input = root.join(FIXTURES).join(format!("{image}.png"));
        let output = out_dir.join(format!("{image}_{case}.png"));
        let status = Command::new(env!("CARGO_BIN_EXE_cnntui"))
            .args(["image", "affine"])
            .arg(&input)
            .arg(&output)
            .args(["--theta", theta, "--tx", tx, "--ty", ty, "--shear", shear])
            .args(["--zx", zx, "--zy", zy, "--fill", fill, "--cval", cval])
            .status()
            .unwrap();
        assert!(status.success(), "{line}: exit {status}");
        let ours = Image::open(&output).unwrap();
        let keras = Image::open(&root.join(FIXTURES).join(format!("{image}_{case}.png"))).unwrap();
        assert_eq!(
            (ours.width, ours.height, ours.channels),
            (keras.width, keras.height, keras.channels),
            "{line}"
        );
        let worst = ours
            .data
            .iter()
            .zip(&keras.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        if worst > 1.0 {
            failures.push(format!(
                "{image} {case}: largest difference {worst} (of 255)"
            ));
        }
        count += 1;
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    assert_eq!(count, 18, "cases.txt lists three photographs × six warps");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn image_affine_names_an_unknown_fill_mode() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_cnntui"))
        .args(["image", "affine"])
        .arg(root.join(FIXTURES).join("coffee.png"))
        .arg(std::env::temp_dir().join("cnntui-never-written.png"))
        .args(["--fill", "mirror"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown fill mode `mirror`; use one of: nearest, constant, reflect, wrap"),
        "{stderr}"
    );
}
