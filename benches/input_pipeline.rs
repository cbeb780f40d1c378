//! The input pipeline's throughput on JPEGs at 150×150, as `models/cats_and_dogs_small.ron`
//! trains on them: decode, Pillow-exact bilinear resize to 150×150, Keras-style augmentation
//! (Chollet's cats-vs-dogs settings: rotation 40°, shifts 0.2, shear 0.2°, zoom 0.2, horizontal
//! flip) and rescaling, on worker threads, in batches of 32. Compare its images/s with what
//! training consumes: `cnntui bench models/cats_and_dogs_small.ron --mode train` (samples/s);
//! the images issue asks for at least twice that.
//!
//! The folder is built from real photographs (scikit-image's samples in `assets/images`,
//! fetched by `scripts/assets`): 64 crops of 60–100% of each side, some mirrored, saved as
//! JPEG into a temporary directory in two classes — about the size of the cats-vs-dogs photos.
//! Run with `cargo bench --bench input_pipeline`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cnntui::data::Samples;
use cnntui::data::augment::{Augment, SampleRng};
use cnntui::data::folder::{self, ColorMode, FolderOptions};
use cnntui::data::image::{Filter, Image};
use cnntui::data::pipeline::{Feed, Loader};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PHOTOS: [(&str, &str); 4] = [
    ("cat", "chelsea.png"),
    ("cat", "astronaut.png"),
    ("other", "coffee.png"),
    ("other", "rocket.jpg"),
];

fn mirrored(img: &Image) -> Image {
    let mut out = img.clone();
    let c = img.channels;
    for y in 0..img.height {
        for x in 0..img.width {
            let (to, from) = (
                (y * img.width + x) * c,
                (y * img.width + img.width - 1 - x) * c,
            );
            out.data[to..to + c].copy_from_slice(&img.data[from..from + c]);
        }
    }
    out
}

/// Writes 16 JPEG crops of each photograph under `dir/CLASS/`.
fn jpeg_folder(dir: &Path) -> PathBuf {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/images");
    let mut rng = SampleRng::new(5);
    for (k, (class, file)) in PHOTOS.iter().enumerate() {
        let photo = Image::open(&assets.join(file)).expect("run scripts/assets first");
        std::fs::create_dir_all(dir.join(class)).expect("class dir");
        for i in 0..16 {
            let w = (photo.width as f64 * rng.uniform(0.6, 1.0)) as usize;
            let h = (photo.height as f64 * rng.uniform(0.6, 1.0)) as usize;
            let x = (rng.unit() * (photo.width - w) as f64) as usize;
            let y = (rng.unit() * (photo.height - h) as f64) as usize;
            let mut crop = photo.crop(x, y, x + w, y + h).expect("crop inside");
            if i % 2 == 1 {
                crop = mirrored(&crop);
            }
            crop.save(&dir.join(class).join(format!("{k}_{i}.jpg")))
                .expect("JPEG written");
        }
    }
    dir.to_path_buf()
}

fn pipeline(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("cnntui-bench-jpegs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    jpeg_folder(&dir);
    let options = FolderOptions {
        image_size: (150, 150),
        interpolation: Filter::Bilinear,
        color_mode: ColorMode::Rgb,
    };
    let scan = folder::scan(&dir, &options, None).expect("the folder scans");
    let n = scan.files.len();
    let samples = Arc::new(Samples::files(scan, options, 1.0 / 255.0));
    let chollet = Augment {
        rotation_range: 40.0,
        width_shift_range: 0.2,
        height_shift_range: 0.2,
        shear_range: 0.2,
        zoom_range: Augment::zoom(0.2),
        horizontal_flip: true,
        ..Augment::default()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("input_pipeline_jpeg_150x150");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    for (name, augment) in [("augmented", Some(chollet)), ("plain", None)] {
        let loader = Arc::new(Loader::new(samples.clone(), augment, 1));
        let mut epoch = 0;
        group.bench_function(format!("{name}_{threads}_threads"), |b| {
            b.iter(|| {
                epoch += 1;
                let order: Vec<usize> = (0..n).collect();
                Feed::new(loader.clone(), order, 32, 0, Some(epoch), threads).count()
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
