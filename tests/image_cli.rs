//! `cnntui image`: the real binary on real photographs (from `scripts/assets`) — the result is
//! written and drawn — and on bad input, which exits with status 2 and a message that names
//! the file or parameter and says what is valid, as `tests/bad_input.rs` does for models.

mod common;

use std::path::Path;

use cnntui::data::image::Image;
use common::{TempDir, cnntui};

const CHELSEA: &str = "assets/images/chelsea.png";

#[test]
fn canny_writes_an_edge_map_and_draws_it_in_ascii_off_a_terminal() {
    let dir = TempDir::new("image-cli-canny");
    let out = dir.path("canny.png");
    let run = cnntui(&["image", "canny", CHELSEA, &out, "--sigma", "2", "--show"]);
    run.assert_ok();
    let edges = Image::open(Path::new(&out)).unwrap();
    assert_eq!((edges.width, edges.height, edges.channels), (451, 300, 1));
    let on = edges.data.iter().filter(|&&v| v == 255.0).count();
    assert!(on > 1000 && on < 30_000, "{on} edge pixels");
    assert!(edges.data.iter().all(|&v| v == 0.0 || v == 255.0));
    // Off a terminal --show draws 80 columns of ASCII shades, no escape codes.
    let drawing: Vec<&str> = run.stdout.lines().filter(|l| l.len() == 80).collect();
    assert!(drawing.len() >= 20, "{}", run.stdout);
    assert!(!run.stdout.contains('\x1b'));
}

#[test]
fn every_operation_runs_on_a_photo() {
    let dir = TempDir::new("image-cli-every");
    for (op, extra, channels) in [
        ("grey", &[][..], 1),
        (
            "resize",
            &["--width", "90", "--height", "60", "--filter", "lanczos"][..],
            3,
        ),
        ("gaussian", &["--sigma", "3"][..], 3),
        ("tv-denoise", &["--weight", "0.15"][..], 3),
        ("sobel", &["--direction", "vertical"][..], 1),
        ("kmeans", &["-k", "4", "--seed", "3"][..], 3),
    ] {
        let out = dir.path(&format!("{op}.png"));
        let mut args = vec!["image", op, CHELSEA, &out];
        args.extend_from_slice(extra);
        cnntui(&args).assert_ok();
        let img = Image::open(Path::new(&out)).unwrap();
        assert_eq!(img.channels, channels, "{op}");
    }
}

#[test]
fn kmeans_prints_a_palette_whose_shares_sum_to_one_and_repeats_for_a_seed() {
    let dir = TempDir::new("image-cli-kmeans");
    let (a, b) = (dir.path("a.png"), dir.path("b.png"));
    let run = cnntui(&["image", "kmeans", CHELSEA, &a, "-k", "5", "--seed", "7"]);
    run.assert_ok();
    let shares: Vec<f64> = run
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.ends_with('%')))
        .map(|w| w.trim_end_matches('%').parse::<f64>().unwrap())
        .collect();
    assert_eq!(shares.len(), 5, "{}", run.stdout);
    assert!(
        (shares.iter().sum::<f64>() - 100.0).abs() < 0.05,
        "{shares:?}"
    );
    cnntui(&["image", "kmeans", CHELSEA, &b, "-k", "5", "--seed", "7"]).assert_ok();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn a_missing_or_non_image_input_is_named() {
    let dir = TempDir::new("image-cli-input");
    let out = dir.path("out.png");
    cnntui(&["image", "grey", "no/such/photo.png", &out])
        .assert_bad_input(&["no/such/photo.png", "cannot read the file"]);
    cnntui(&["image", "grey", "Cargo.toml", &out]).assert_bad_input(&[
        "Cargo.toml",
        "not a readable image",
        "JPEG, PNG",
    ]);
    assert!(!Path::new(&out).exists());
}

#[test]
fn unknown_operations_and_names_list_the_valid_ones() {
    let dir = TempDir::new("image-cli-names");
    let out = dir.path("out.png");
    cnntui(&["image", "blur", CHELSEA, &out]).assert_bad_input(&[
        "unknown image operation `blur`",
        "grey, resize, gaussian, tv-denoise, sobel, canny, kmeans",
    ]);
    cnntui(&[
        "image", "resize", CHELSEA, &out, "--width", "9", "--height", "9", "--filter", "cubic",
    ])
    .assert_bad_input(&["cubic", "nearest, bilinear, bicubic, lanczos, area"]);
    cnntui(&["image", "gaussian", CHELSEA, &out, "--border", "wrap"])
        .assert_bad_input(&["wrap", "nearest, reflect, mirror, constant"]);
    cnntui(&["image", "sobel", CHELSEA, &out, "--direction", "diagonal"])
        .assert_bad_input(&["diagonal", "vertical, horizontal, magnitude"]);
}

#[test]
fn out_of_range_parameters_say_the_valid_range() {
    let dir = TempDir::new("image-cli-range");
    let out = dir.path("out.png");
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["gaussian", "--sigma", "-1"],
            &["sigma = -1 is out of range", "from 0 to"],
        ),
        (
            &["gaussian", "--kernel-size", "4"],
            &["kernel size = 4", "odd number"],
        ),
        (
            &["tv-denoise", "--weight", "0"],
            &["weight = 0 is out of range", "positive"],
        ),
        (
            &["canny", "--low", "60", "--high", "20"],
            &["low threshold = 60", "give low ≤ high"],
        ),
        (&["canny", "--sigma", "-0.5"], &["sigma = -0.5"]),
        (
            &["kmeans", "-k", "0"],
            &["k = 0 is out of range", "from 1 to 256"],
        ),
        (
            &["resize", "--width", "0", "--height", "5"],
            &["0×5", "at least 1 pixel"],
        ),
    ];
    for (args, needles) in cases {
        let mut full = vec!["image", args[0], CHELSEA, &out];
        full.extend_from_slice(&args[1..]);
        cnntui(&full).assert_bad_input(needles);
    }
    assert!(!Path::new(&out).exists());
}

#[test]
fn an_unwritable_output_is_named() {
    cnntui(&["image", "grey", CHELSEA, "/nonexistent-dir/out.png"])
        .assert_bad_input(&["/nonexistent-dir/out.png", "cannot write"]);
    let dir = TempDir::new("image-cli-ext");
    cnntui(&["image", "grey", CHELSEA, &dir.path("out.xyz")])
        .assert_bad_input(&["out.xyz", "extension such as .png"]);
}
