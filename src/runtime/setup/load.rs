//! Loading what a model file's `train.data` and `train.augment` name: IDX directories and image
//! folders become [`Samples`], the augmentation ranges an [`Augment`]; every setting is checked
//! here, with the file and the place in it, before any data is read.

use std::path::Path;
use std::sync::Arc;

use super::{SetupError, bad};
use crate::data::augment::{Augment, FillMode};
use crate::data::folder::{self, ColorMode, FolderOptions};
use crate::data::image::Filter;
use crate::data::{self, Samples};
use crate::model::{
    AugmentSpec, DataSpec, FolderSpec, ModelFile, TrainSpec, ValidationSpec, ZoomSpec,
};
use crate::runtime::TrainData;

/// Keras's `label_mode`: how a folder's class becomes a target (here: which loss takes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelMode {
    Int,
    Categorical,
    Binary,
}

impl LabelMode {
    pub fn name(self) -> &'static str {
        match self {
            LabelMode::Int => "int",
            LabelMode::Categorical => "categorical",
            LabelMode::Binary => "binary",
        }
    }

    fn from_name(name: &str) -> Option<LabelMode> {
        match name {
            "int" => Some(LabelMode::Int),
            "categorical" => Some(LabelMode::Categorical),
            "binary" => Some(LabelMode::Binary),
            _ => None,
        }
    }

    /// The label mode a loss takes.
    pub fn of_loss(loss: crate::model::LossSpec) -> LabelMode {
        use crate::model::LossSpec;
        match loss {
            LossSpec::SparseCategoricalCrossentropy => LabelMode::Int,
            LossSpec::CategoricalCrossentropy => LabelMode::Categorical,
            LossSpec::BinaryCrossentropy => LabelMode::Binary,
        }
    }
}

/// What was loaded, with what the caller must check against the model and print first.
pub struct Loaded {
    pub data: TrainData,
    /// For folders: the label mode (checked against the loss and the output layer).
    pub label_mode: Option<LabelMode>,
    /// For folders: the requested image size and colour mode (for the input-shape message).
    pub folder: Option<FolderOptions>,
    /// For folders: the training directory (for messages about its classes).
    pub train_dir: Option<std::path::PathBuf>,
    /// Skipped files and the like.
    pub warnings: Vec<String>,
}

fn positive_limit(
    file: &Path,
    field: &'static str,
    v: Option<i64>,
) -> Result<Option<usize>, SetupError> {
    v.map(|v| {
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| bad(file, field, v, "at least 1"))
    })
    .transpose()
}

/// Checks a data section's image operations: each in range, and none that changes an image's
/// size or channels (the model's input is fixed; resizing is `image_size`'s job).
fn check_preprocess(file: &Path, ops: &[crate::data::image::ImageOp]) -> Result<(), SetupError> {
    use crate::data::image::ImageOp;
    for op in ops {
        let problem = match op {
            ImageOp::Grey | ImageOp::Resize { .. } => Some(format!(
                "`{}` changes the image's channels or size; use `color_mode` and `image_size` instead",
                op.name()
            )),
            _ => op.validate().err().map(|e| e.to_string()),
        };
        if let Some(message) = problem {
            return Err(SetupError::Preprocess {
                file: file.to_path_buf(),
                message,
            });
        }
    }
    Ok(())
}

/// Checks that the data section's image operations keep the first training sample's size and
/// channels (Sobel and Canny make colour grey, so they suit grey data only).
fn check_preprocessed_shape(file: &Path, samples: &Samples) -> Result<(), SetupError> {
    if samples.preprocess.is_empty() || samples.is_empty() {
        return Ok(());
    }
    let img = samples.raw(0).map_err(|message| SetupError::Preprocess {
        file: file.to_path_buf(),
        message,
    })?;
    let [h, w, c] = samples.shape;
    if [img.height, img.width, img.channels] != [h, w, c] {
        return Err(SetupError::Preprocess {
            file: file.to_path_buf(),
            message: format!(
                "the operations turn a {h}×{w}×{c} image into {}×{}×{}; keep only operations \
                 that keep the size and channels (sobel and canny make colour grey: use them \
                 with `color_mode: \"grayscale\"`)",
                img.height, img.width, img.channels
            ),
        });
    }
    Ok(())
}

/// The `image_size`, `interpolation` and `color_mode` of a data section, checked; absent
/// ones take `default`'s.
fn image_options(
    path: &Path,
    image_size: Option<(i64, i64)>,
    interpolation: Option<&str>,
    color_mode: Option<&str>,
    default: FolderOptions,
) -> Result<FolderOptions, SetupError> {
    let (h, w) = match image_size {
        None => default.image_size,
        Some((h, w)) => {
            let size = |v: i64| usize::try_from(v).ok().filter(|&v| v > 0);
            let (Some(sh), Some(sw)) = (size(h), size(w)) else {
                return Err(bad(
                    path,
                    "data.image_size",
                    format!("({h}, {w})"),
                    "two sides of at least 1 pixel",
                ));
            };
            (sh, sw)
        }
    };
    let interpolation = match interpolation {
        None => default.interpolation,
        Some(name) => name.parse().map_err(|_| {
            bad(
                path,
                "data.interpolation",
                format!("\"{name}\""),
                "one of nearest, bilinear, bicubic, lanczos, area",
            )
        })?,
    };
    let color_mode = match color_mode {
        None => default.color_mode,
        Some(name) => ColorMode::from_name(name).ok_or_else(|| {
            bad(
                path,
                "data.color_mode",
                format!("\"{name}\""),
                "one of rgb, grayscale",
            )
        })?,
    };
    Ok(FolderOptions {
        image_size: (h, w),
        interpolation,
        color_mode,
    })
}

fn rescale(file: &Path, field: &'static str, v: Option<f64>) -> Result<f32, SetupError> {
    let r = v.unwrap_or(1.0 / 255.0);
    if !(r.is_finite() && r > 0.0) {
        return Err(bad(
            file,
            field,
            r,
            "a positive number such as 0.00392156862745098 (1/255)",
        ));
    }
    Ok(r as f32)
}

/// Loads the data `spec` names; `limit` (the `--limit` flag) overrides the file's `limit`.
/// Images (not stored features) are normalised per channel with `normalise` (`(mean, std)`)
/// after their rescale, when the model's weights ask for it.
///
/// # Errors
/// Settings out of range (naming the file and the field), and data errors naming the files.
pub fn load_data(
    file: &ModelFile,
    spec: &TrainSpec,
    limit: Option<usize>,
    normalise: Option<&(Vec<f32>, Vec<f32>)>,
) -> Result<Loaded, SetupError> {
    let norm = |s: Samples| match normalise {
        Some((mean, std)) if mean.len() == s.shape[2] => s.normalised(mean.clone(), std.clone()),
        _ => s,
    };
    match &spec.data {
        DataSpec::Idx {
            dir,
            rescale: r,
            limit: file_limit,
            preprocess,
            image_size,
            interpolation,
            color_mode,
        } => {
            check_preprocess(&file.path, preprocess)?;
            let r = rescale(&file.path, "data.rescale", *r)?;
            let limit = limit.or(positive_limit(&file.path, "data.limit", *file_limit)?);
            let splits = data::load_idx_dir(&file.resolve(dir), 1.0)?;
            let [h, w, c] = splits.train.shape;
            let stored = FolderOptions {
                image_size: (h, w),
                interpolation: Filter::Bilinear,
                color_mode: if c == 3 {
                    ColorMode::Rgb
                } else {
                    ColorMode::Grayscale
                },
            };
            let options = image_options(
                &file.path,
                *image_size,
                interpolation.as_deref(),
                color_mode.as_deref(),
                stored,
            )?;
            let mut train = splits.train;
            if let Some(limit) = limit {
                train = train.take(limit);
            }
            let (train, validation) = match spec.validation {
                ValidationSpec::None => (train, None),
                ValidationSpec::TestSplit => (train, Some(splits.test.clone())),
                ValidationSpec::Split(f) => {
                    let (t, v) = train.split_tail(f)?;
                    (t, Some(v))
                }
            };
            let wrap = |d| {
                let s = Samples::memory(d, r).with_preprocess(preprocess.clone());
                Arc::new(norm(if options == stored {
                    s
                } else {
                    s.converted(options)
                }))
            };
            let train = wrap(train);
            check_preprocessed_shape(&file.path, &train)?;
            Ok(Loaded {
                data: TrainData {
                    train,
                    validation: validation.map(wrap),
                    test: Some(wrap(splits.test)),
                    augment: augment(&file.path, spec.augment.as_ref())?,
                },
                label_mode: None,
                folder: None,
                train_dir: None,
                warnings: Vec::new(),
            })
        }
        DataSpec::Features { file: f, limit: l } => load_features(
            file,
            spec,
            f,
            limit.or(positive_limit(&file.path, "data.limit", *l)?),
        ),
        DataSpec::Folder(f) => load_folder(file, spec, f, limit, &norm),
    }
}

/// Stored features (`cnntui extract`): in memory, not rescaled, not augmented.
fn load_features(
    file: &ModelFile,
    spec: &TrainSpec,
    name: &str,
    limit: Option<usize>,
) -> Result<Loaded, SetupError> {
    let path = file.resolve(name);
    let stored = data::features::read(&path)?;
    if spec.augment.is_some() {
        return Err(bad(
            &file.path,
            "augment",
            "(...)",
            "absent with `Features` data: stored features are computed once, so they cannot be \
             augmented (train the base end to end with augmentation instead)",
        ));
    }
    let mut train = stored.train;
    if let Some(limit) = limit {
        train = train.take(limit);
    }
    let (train, validation) = match spec.validation {
        ValidationSpec::None => (train, None),
        ValidationSpec::TestSplit => match (&stored.test, &stored.validation) {
            (Some(t), _) => (train, Some(t.clone())),
            (None, _) => {
                return Err(bad(
                    &file.path,
                    "validation",
                    "TestSplit",
                    "None or Split(f): the features file has no test split",
                ));
            }
        },
        ValidationSpec::Split(f) => {
            let (t, v) = train.split_tail(f)?;
            (t, Some(v))
        }
    };
    let names = stored.class_names;
    let wrap = |d| {
        let mut s = Samples::memory(d, 1.0);
        s.class_names = names.clone();
        Arc::new(s)
    };
    Ok(Loaded {
        data: TrainData {
            train: wrap(train),
            validation: validation.or(stored.validation).map(wrap),
            test: stored.test.map(wrap),
            augment: None,
        },
        label_mode: None,
        folder: None,
        train_dir: None,
        warnings: Vec::new(),
    })
}

fn load_folder(
    file: &ModelFile,
    spec: &TrainSpec,
    f: &FolderSpec,
    limit: Option<usize>,
    norm: &dyn Fn(Samples) -> Samples,
) -> Result<Loaded, SetupError> {
    let path = file.path.as_path();
    let options = image_options(
        path,
        f.image_size,
        f.interpolation.as_deref(),
        f.color_mode.as_deref(),
        FolderOptions {
            image_size: (256, 256),
            interpolation: Filter::Bilinear,
            color_mode: ColorMode::Rgb,
        },
    )?;
    let label_mode = match &f.label_mode {
        None => LabelMode::of_loss(spec.loss),
        Some(name) => LabelMode::from_name(name).ok_or_else(|| {
            bad(
                path,
                "data.label_mode",
                format!("\"{name}\""),
                "one of int, categorical, binary",
            )
        })?,
    };
    if label_mode != LabelMode::of_loss(spec.loss) {
        return Err(SetupError::LabelModeMismatch {
            file: path.to_path_buf(),
            label_mode: label_mode.name(),
            loss: spec.loss,
            wanted: LabelMode::of_loss(spec.loss).name(),
        });
    }
    let r = rescale(path, "data.rescale", f.rescale)?;
    let limit = limit.or(positive_limit(path, "data.limit", f.limit)?);
    if f.validation_dir.is_some() && f.validation_split.is_some() {
        return Err(bad(
            path,
            "data.validation_split",
            f.validation_split.unwrap_or(0.0),
            "absent when `validation_dir` is given (use one or the other)",
        ));
    }
    if let Some(s) = f.validation_split
        && !(s > 0.0 && s < 1.0)
    {
        return Err(bad(
            path,
            "data.validation_split",
            s,
            "a fraction in (0, 1)",
        ));
    }
    if let ValidationSpec::Split(s) = spec.validation {
        return Err(bad(
            path,
            "validation",
            format!("Split({s})"),
            "None or TestSplit for a Folder dataset (give `validation_split` and `seed` inside `Folder(...)`: a folder's files are in class order)",
        ));
    }
    if spec.validation == ValidationSpec::TestSplit && f.test_dir.is_none() {
        return Err(bad(
            path,
            "validation",
            "TestSplit",
            "None when the Folder has no `test_dir` (add `test_dir`)",
        ));
    }
    let augment = augment(path, spec.augment.as_ref())?;
    let mut warnings = Vec::new();
    let mut scan = |dir: &str, classes: Option<&[String]>| -> Result<folder::Scan, SetupError> {
        let s = folder::scan(&file.resolve(dir), &options, classes)?;
        warnings.extend(s.skipped_message());
        Ok(s)
    };
    let train = scan(&f.dir, None)?;
    let classes = train.class_names.clone();
    let (train, validation) = match (&f.validation_dir, f.validation_split) {
        (Some(dir), _) => (train, Some(scan(dir, Some(&classes))?)),
        (None, Some(s)) => {
            let (t, v) = train.split(s, f.seed.unwrap_or(spec.seed))?;
            (t, Some(v))
        }
        (None, None) => (train, None),
    };
    let test = f
        .test_dir
        .as_deref()
        .map(|d| scan(d, Some(&classes)))
        .transpose()?;
    let train = match limit {
        Some(l) => train.take(l),
        None => train,
    };
    check_preprocess(path, &f.preprocess)?;
    let wrap = |s| {
        Arc::new(norm(
            Samples::files(s, options, r).with_preprocess(f.preprocess.clone()),
        ))
    };
    let test = test.map(wrap);
    let validation = match spec.validation {
        ValidationSpec::TestSplit => test.clone(),
        _ => validation.map(wrap),
    };
    let train = wrap(train);
    check_preprocessed_shape(path, &train)?;
    Ok(Loaded {
        data: TrainData {
            train,
            validation,
            test,
            augment,
        },
        label_mode: Some(label_mode),
        folder: Some(options),
        train_dir: Some(file.resolve(&f.dir)),
        warnings,
    })
}

/// The augmentation `spec` declares, checked.
///
/// # Errors
/// [`SetupError::BadSetting`] naming the parameter out of range or the unknown fill mode.
pub fn augment(file: &Path, spec: Option<&AugmentSpec>) -> Result<Option<Augment>, SetupError> {
    let Some(spec) = spec else { return Ok(None) };
    let fill_name = spec.fill_mode.as_deref().unwrap_or("nearest");
    let fill_mode: FillMode = fill_name.parse().map_err(|_| {
        bad(
            file,
            "augment.fill_mode",
            format!("\"{fill_name}\""),
            "one of nearest, constant, reflect, wrap",
        )
    })?;
    let zoom_range = match spec.zoom_range {
        None => (1.0, 1.0),
        Some(ZoomSpec::Range(z)) => {
            if !(z.is_finite() && (0.0..1.0).contains(&z)) {
                return Err(bad(
                    file,
                    "augment.zoom_range",
                    z,
                    "a fraction in [0, 1) or a pair (lo, hi) with 0 < lo ≤ hi",
                ));
            }
            Augment::zoom(z)
        }
        Some(ZoomSpec::Pair(p)) => p,
    };
    let augment = Augment {
        rotation_range: spec.rotation_range,
        width_shift_range: spec.width_shift_range,
        height_shift_range: spec.height_shift_range,
        shear_range: spec.shear_range,
        zoom_range,
        horizontal_flip: spec.horizontal_flip,
        vertical_flip: spec.vertical_flip,
        fill_mode,
        cval: spec.cval,
        brightness_range: spec.brightness_range,
    };
    augment.validate().map_err(|e| SetupError::BadSetting {
        file: file.to_path_buf(),
        field: e.field,
        value: e.value,
        constraint: e.constraint,
    })?;
    Ok(Some(augment))
}
