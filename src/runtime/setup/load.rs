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
///
/// # Errors
/// Settings out of range (naming the file and the field), and data errors naming the files.
pub fn load_data(
    file: &ModelFile,
    spec: &TrainSpec,
    limit: Option<usize>,
) -> Result<Loaded, SetupError> {
    match &spec.data {
        DataSpec::Idx {
            dir,
            rescale: r,
            limit: file_limit,
            preprocess,
        } => {
            check_preprocess(&file.path, preprocess)?;
            let r = rescale(&file.path, "data.rescale", *r)?;
            let limit = limit.or(positive_limit(&file.path, "data.limit", *file_limit)?);
            let splits = data::load_idx_dir(&file.resolve(dir), 1.0)?;
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
            let wrap = |d| Arc::new(Samples::memory(d, r).with_preprocess(preprocess.clone()));
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
        DataSpec::Folder(f) => load_folder(file, spec, f, limit),
    }
}

fn load_folder(
    file: &ModelFile,
    spec: &TrainSpec,
    f: &FolderSpec,
    limit: Option<usize>,
) -> Result<Loaded, SetupError> {
    let path = file.path.as_path();
    let (h, w) = f.image_size.unwrap_or((256, 256));
    let size = |v: i64| usize::try_from(v).ok().filter(|&v| v > 0);
    let (Some(h), Some(w)) = (size(h), size(w)) else {
        return Err(bad(
            path,
            "data.image_size",
            format!("({h}, {w})"),
            "two sides of at least 1 pixel",
        ));
    };
    let interpolation_name = f.interpolation.as_deref().unwrap_or("bilinear");
    let interpolation: Filter = interpolation_name.parse().map_err(|_| {
        bad(
            path,
            "data.interpolation",
            format!("\"{interpolation_name}\""),
            "one of nearest, bilinear, bicubic, lanczos, area",
        )
    })?;
    let color_name = f.color_mode.as_deref().unwrap_or("rgb");
    let color_mode = ColorMode::from_name(color_name).ok_or_else(|| {
        bad(
            path,
            "data.color_mode",
            format!("\"{color_name}\""),
            "one of rgb, grayscale",
        )
    })?;
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
    let options = FolderOptions {
        image_size: (h, w),
        interpolation,
        color_mode,
    };
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
    let wrap = |s| Arc::new(Samples::files(s, options, r).with_preprocess(f.preprocess.clone()));
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
