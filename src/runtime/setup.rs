//! Turning a model file and command-line overrides into a ready [`Trainer`]: lowering, data
//! loading and every check that must fail before training starts (labels that do not fit the
//! output, an input shape the data does not have, an unwritable save directory, a checkpoint
//! that does not fit). Reading `train.data` and `train.augment` is [`load`]'s.

mod load;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::checkpoint::{self, CheckpointError};
use super::{Loss, Optimizer, ParamStore, TrainConfig, TrainData, Trainer};
use crate::data::DataError;
use crate::ir::{self, Graph, LoadError};
use crate::model::{self, LossSpec, ModelFile, ValidationSpec};
pub use load::{LabelMode, Loaded, augment, load_data};

/// Command-line overrides of a model's `train` section.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    /// Use only the first N training samples.
    pub limit: Option<usize>,
    pub save: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    /// Replaces `train.seed`.
    pub seed: Option<u64>,
    /// What runs the convolutions and dense layers.
    pub backend: super::Backend,
    /// A weights file (safetensors, PyTorch or a cnntui checkpoint; see [`crate::weights`])
    /// loaded into every layer it names, after the weights of the model's `base`.
    pub weights: Option<PathBuf>,
}

/// Why training could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{}: the model has no `train` section: add one with `data`, `loss` and `optimizer` (see models/mnist.ron)", file.display())]
    NoTrainSection { file: PathBuf },
    #[error("{}: `train.{field}` must be {constraint}, got {value}", file.display())]
    BadSetting {
        file: PathBuf,
        field: &'static str,
        value: String,
        constraint: &'static str,
    },
    #[error("{}: `train.data.preprocess`: {message}", file.display())]
    Preprocess { file: PathBuf, message: String },
    #[error("{flag} must be at least 1, got {value}")]
    BadFlag { flag: &'static str, value: usize },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{}: the data's {split} labels go up to {max_label}, but the output layer `{layer}` has {units} unit(s) for {loss:?}; {fix}", file.display())]
    LabelOutOfRange {
        file: PathBuf,
        split: &'static str,
        max_label: u32,
        layer: String,
        units: usize,
        loss: LossSpec,
        fix: String,
    },
    #[error("{}: the data's images are {data:?} (height, width, channels) but the model's input is {model:?}; change `input` to match", file.display())]
    InputMismatch {
        file: PathBuf,
        data: [usize; 3],
        model: Vec<usize>,
    },
    #[error("{}: `train.data.label_mode` is \"{label_mode}\" but the loss is {loss:?}, which takes label_mode \"{wanted}\"; use \"int\" with SparseCategoricalCrossentropy, \"categorical\" with CategoricalCrossentropy, \"binary\" with BinaryCrossentropy", file.display())]
    LabelModeMismatch {
        file: PathBuf,
        label_mode: &'static str,
        loss: LossSpec,
        wanted: &'static str,
    },
    #[error("{}: {} has {classes} class folder(s) ([{}]) but label_mode \"{label_mode}\" needs {needs}; add or remove class folders, or change the loss", file.display(), dir.display(), names.join(", "))]
    ClassCount {
        file: PathBuf,
        dir: PathBuf,
        classes: usize,
        names: Vec<String>,
        label_mode: &'static str,
        needs: &'static str,
    },
    #[error("{}: {classes} classes ([{}]) with label_mode \"{label_mode}\" need {want} output unit(s), but the output layer `{layer}` has {units}; give `{layer}` {want} unit(s)", file.display(), names.join(", "))]
    OutputMismatch {
        file: PathBuf,
        classes: usize,
        names: Vec<String>,
        label_mode: &'static str,
        layer: String,
        units: usize,
        want: usize,
    },
    #[error("{}: `train.data.image_size` ({}, {}) with color_mode \"{color_mode}\" gives images of {data:?} (height, width, channels), but the model's input is {model:?}; make `image_size` and `color_mode` agree with `input`", file.display(), image_size.0, image_size.1)]
    ImageSizeMismatch {
        file: PathBuf,
        image_size: (usize, usize),
        color_mode: &'static str,
        data: [usize; 3],
        model: Vec<usize>,
    },
    #[error("{0}")]
    SaveDir(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Pass(#[from] crate::passes::PassError),
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightsError),
}

/// A trainer ready to run, with what the caller may want to show first.
pub struct Prepared {
    pub trainer: Trainer,
    pub warnings: Vec<String>,
    pub file: ModelFile,
}

/// sha256 of a model file's text, as checkpoints record it.
pub fn model_hash(source: &str) -> String {
    Sha256::digest(source.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn bad(
    file: &Path,
    field: &'static str,
    value: impl ToString,
    constraint: &'static str,
) -> SetupError {
    SetupError::BadSetting {
        file: file.to_path_buf(),
        field,
        value: value.to_string(),
        constraint,
    }
}

/// Checks a folder dataset's classes and label mode against the output layer.
fn check_classes(
    file: &Path,
    graph: &Graph,
    loaded: &Loaded,
    label_mode: LabelMode,
) -> Result<(), SetupError> {
    let train = &loaded.data.train;
    let (classes, names) = (train.classes, train.class_names.clone());
    let needs = match label_mode {
        LabelMode::Binary if classes != 2 => Some("exactly 2"),
        LabelMode::Int | LabelMode::Categorical if classes < 2 => Some("at least 2"),
        _ => None,
    };
    if let Some(needs) = needs {
        return Err(SetupError::ClassCount {
            file: file.to_path_buf(),
            dir: loaded.train_dir.clone().unwrap_or_default(),
            classes,
            names,
            label_mode: label_mode.name(),
            needs,
        });
    }
    let units = graph.output_shape().elems();
    let want = if label_mode == LabelMode::Binary {
        1
    } else {
        classes
    };
    if units != want {
        return Err(SetupError::OutputMismatch {
            file: file.to_path_buf(),
            classes,
            names,
            label_mode: label_mode.name(),
            layer: graph.nodes[graph.output].name.clone(),
            units,
            want,
        });
    }
    if let Some(options) = &loaded.folder {
        let model = graph.input_shape().0.clone();
        if train.shape[..] != model[..] {
            return Err(SetupError::ImageSizeMismatch {
                file: file.to_path_buf(),
                image_size: options.image_size,
                color_mode: match options.color_mode {
                    crate::data::folder::ColorMode::Rgb => "rgb",
                    crate::data::folder::ColorMode::Grayscale => "grayscale",
                },
                data: train.shape,
                model,
            });
        }
    }
    Ok(())
}

/// Checks that labels fit the output layer and images fit the input.
fn check_data(
    file: &Path,
    graph: &Graph,
    loss: LossSpec,
    data: &TrainData,
) -> Result<(), SetupError> {
    let units = graph.output_shape().elems();
    let out = &graph.nodes[graph.output].name;
    let sets = [
        ("training", Some(&data.train)),
        ("validation", data.validation.as_ref()),
        ("test", data.test.as_ref()),
    ];
    for (split, set) in sets {
        let Some(set) = set else { continue };
        let want = graph.input_shape().0.clone();
        if set.shape[..] != want[..] {
            return Err(SetupError::InputMismatch {
                file: file.to_path_buf(),
                data: set.shape,
                model: want,
            });
        }
        let max_label = set.labels.iter().copied().max().unwrap_or(0);
        let limit = if loss == LossSpec::BinaryCrossentropy {
            2
        } else {
            units
        };
        let fits =
            (max_label as usize) < limit && !(loss == LossSpec::BinaryCrossentropy && units != 1);
        if !fits {
            let fix = if loss == LossSpec::BinaryCrossentropy {
                "BinaryCrossentropy needs labels 0 and 1 and one sigmoid unit".to_string()
            } else {
                format!("give `{out}` {} units", max_label + 1)
            };
            return Err(SetupError::LabelOutOfRange {
                file: file.to_path_buf(),
                split,
                max_label,
                layer: out.clone(),
                units,
                loss,
                fix,
            });
        }
    }
    Ok(())
}

fn positive(file: &Path, field: &'static str, v: i64) -> Result<usize, SetupError> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| bad(file, field, v, "at least 1"))
}

/// Builds a trainer for `path` with `overrides`: everything that can be wrong is reported
/// here, before the first batch.
///
/// # Errors
/// Every [`SetupError`].
pub fn prepare(path: &Path, overrides: &Overrides) -> Result<Prepared, SetupError> {
    let file = model::load(path).map_err(LoadError::from)?;
    let mut graph = ir::lower(&file)?;
    crate::passes::optimize(
        &mut graph,
        &crate::passes::Target {
            training: true,
            requested: vec![],
        },
    )?;
    let mut spec = file
        .spec
        .train
        .clone()
        .ok_or_else(|| SetupError::NoTrainSection {
            file: path.to_path_buf(),
        })?;
    if let Some(seed) = overrides.seed {
        spec.seed = seed;
    }
    let flag = |flag: &'static str, v: Option<usize>| match v {
        Some(0) => Err(SetupError::BadFlag { flag, value: 0 }),
        other => Ok(other),
    };
    let epochs = match flag("--epochs", overrides.epochs)? {
        Some(e) => e,
        None => positive(path, "epochs", spec.epochs.unwrap_or(1))?,
    };
    let batch_size = match flag("--batch-size", overrides.batch_size)? {
        Some(b) => b,
        None => positive(path, "batch_size", spec.batch_size.unwrap_or(32))?,
    };
    flag("--limit", overrides.limit)?;
    if let ValidationSpec::Split(f) = spec.validation
        && !(0.0..1.0).contains(&f)
    {
        return Err(bad(
            path,
            "validation",
            format!("Split({f})"),
            "a fraction in [0, 1)",
        ));
    }
    let lr = spec.optimizer.learning_rate();
    if !(lr.is_finite() && lr > 0.0) {
        return Err(bad(
            path,
            "optimizer.learning_rate",
            lr,
            "a positive number",
        ));
    }
    let save_dir = overrides
        .save
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&graph.name));
    super::trainer::check_writable(&save_dir).map_err(SetupError::SaveDir)?;
    let mut params = ParamStore::init(&graph, spec.seed);
    let (mut warnings, preprocessing) =
        crate::weights::load_for_model(&graph, &mut params.tensors, overrides.weights.as_deref())?;
    let normalise = preprocessing.as_ref().and_then(|p| p.normalisation());
    let loaded = load_data(&file, &spec, overrides.limit, normalise.as_ref())?;
    if let Some(label_mode) = loaded.label_mode {
        check_classes(path, &graph, &loaded, label_mode)?;
    }
    check_data(path, &graph, spec.loss, &loaded.data)?;
    let data = loaded.data;
    if normalise.is_some() && !matches!(spec.data, model::DataSpec::Features { .. }) {
        warnings.push(
            "the images are normalised with ImageNet's channel mean and std after the rescale, \
             as the imported weights expect"
                .into(),
        );
    }
    let optimizer = Optimizer::new(spec.optimizer, &graph);
    let loss = Loss::new(spec.loss, &graph);
    let config = TrainConfig {
        epochs,
        batch_size,
        seed: spec.seed,
        save_dir,
        model_hash: model_hash(&file.source),
        backend: overrides.backend,
        start_paused: false,
        linger: false,
    };
    let mut trainer = Trainer::new(graph, params, optimizer, loss, data, config);
    trainer.record_preprocessing(preprocessing.and_then(|p| serde_json::to_string(&p).ok()));
    warnings.extend(loaded.warnings);
    if let Some(resume) = &overrides.resume {
        let ckpt = checkpoint::load(resume)?;
        warnings.extend(trainer.resume(&ckpt)?);
    }
    if let Some(limit) = overrides.limit
        && limit > trainer.data.train.len()
    {
        warnings.push(format!(
            "--limit {limit} is more than the {} training samples; using all of them",
            trainer.data.train.len()
        ));
    }
    Ok(Prepared {
        trainer,
        warnings,
        file,
    })
}
