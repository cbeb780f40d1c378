//! Stored features: what a frozen convolutional base computed for every sample of a dataset,
//! written once by `cnntui extract` and read back as a dataset (`data: Features(file: ...)`),
//! so that a small classifier trains on them without running the base again — the fast one of
//! the lecture's two ways of feature extraction (it cannot use augmentation: every epoch sees
//! the same features).
//!
//! The file is safetensors. Per split (`train`, `validation`, `test`, each optional but
//! `train`): `SPLIT.features`, `[n, h, w, c]` f32 (a flat layer's output is stored as
//! `[n, 1, 1, d]`), and `SPLIT.labels`, `[n]` u32. The metadata holds `format`
//! ([`FORMAT`]), `classes`, `class_names` (a JSON list, empty for IDX data), and what made the
//! features (`model`, `layer`, `data`), for people reading the file.
//!
//! Must not depend on `ir`, `runtime` or `tui`.

use std::collections::HashMap;
use std::path::Path;

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use super::{DataError, Dataset};

/// The `format` metadata value of a features file.
pub const FORMAT: &str = "cnntui-features/1";

/// The splits a features file may hold, in order.
pub const SPLITS: [&str; 3] = ["train", "validation", "test"];

/// A features file's contents.
#[derive(Debug)]
pub struct StoredFeatures {
    pub train: Dataset,
    pub validation: Option<Dataset>,
    pub test: Option<Dataset>,
    /// Class names, empty when the data had none (IDX).
    pub class_names: Vec<String>,
    /// Every metadata entry, as written.
    pub metadata: HashMap<String, String>,
}

fn le_bytes<T: Copy>(v: &[T], to: impl Fn(T) -> [u8; 4]) -> Vec<u8> {
    v.iter().flat_map(|&x| to(x)).collect()
}

/// Writes the splits to `path` atomically. `metadata` adds to (and may not replace) `format`,
/// `classes` and `class_names`.
///
/// # Errors
/// The I/O error, or the serialiser's, as text.
pub fn write(
    path: &Path,
    splits: &[(&str, &Dataset)],
    class_names: &[String],
    metadata: &[(&str, String)],
) -> Result<(), String> {
    let classes = splits.iter().map(|(_, d)| d.classes).max().unwrap_or(0);
    let mut meta: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    meta.insert("format".into(), FORMAT.into());
    meta.insert("classes".into(), classes.to_string());
    meta.insert(
        "class_names".into(),
        serde_json::to_string(class_names).map_err(|e| e.to_string())?,
    );
    let bytes: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = splits
        .iter()
        .flat_map(|(split, d)| {
            let [h, w, c] = d.shape;
            [
                (
                    format!("{split}.features"),
                    vec![d.len(), h, w, c],
                    Dtype::F32,
                    le_bytes(&d.images, f32::to_le_bytes),
                ),
                (
                    format!("{split}.labels"),
                    vec![d.len()],
                    Dtype::U32,
                    le_bytes(&d.labels, u32::to_le_bytes),
                ),
            ]
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (name, shape, dtype, data) in &bytes {
        let view = TensorView::new(*dtype, shape.clone(), data).map_err(|e| e.to_string())?;
        views.push((name.clone(), view));
    }
    let out = safetensors::serialize(views, Some(meta)).map_err(|e| e.to_string())?;
    super::write_atomic(path, &out).map_err(|e| e.to_string())
}

/// Reads a features file.
///
/// # Errors
/// [`DataError::Io`] when it cannot be read, [`DataError::Features`] naming what is wrong
/// otherwise (not safetensors, not written by `cnntui extract`, a missing or mis-shaped tensor,
/// a label out of range).
pub fn read(path: &Path) -> Result<StoredFeatures, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| DataError::Features {
        path: path.to_path_buf(),
        reason,
    };
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    if metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!("its metadata has no `format: {FORMAT}`")));
    }
    let classes: usize = metadata
        .get("classes")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("its metadata has no class count".into()))?;
    let class_names: Vec<String> = metadata
        .get("class_names")
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let split = |name: &str| -> Result<Option<Dataset>, DataError> {
        let (f, l) = (format!("{name}.features"), format!("{name}.labels"));
        let (features, labels) = match (st.tensor(&f), st.tensor(&l)) {
            (Ok(f), Ok(l)) => (f, l),
            (Err(_), Err(_)) => return Ok(None),
            _ => return Err(bad(format!("`{f}` and `{l}` must come together"))),
        };
        let n = labels.shape().first().copied().unwrap_or(0);
        if features.dtype() != Dtype::F32
            || labels.dtype() != Dtype::U32
            || features.shape().len() != 4
            || labels.shape().len() != 1
            || features.shape()[0] != n
        {
            return Err(bad(format!(
                "`{f}` must be f32 [n, h, w, c] and `{l}` u32 [n], got {:?} {:?} and {:?} {:?}",
                features.dtype(),
                features.shape(),
                labels.dtype(),
                labels.shape()
            )));
        }
        let images: Vec<f32> = features
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let labels: Vec<u32> = labels
            .data()
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(&max) = labels.iter().max()
            && max as usize >= classes
        {
            return Err(bad(format!(
                "`{l}` holds label {max} but the file has {classes} classes"
            )));
        }
        let s = features.shape();
        Ok(Some(Dataset {
            shape: [s[1], s[2], s[3]],
            images,
            labels,
            classes,
        }))
    };
    let train = split("train")?.ok_or_else(|| bad("it has no `train.features`".into()))?;
    let validation = split("validation")?;
    let test = split("test")?;
    for d in validation.iter().chain(&test) {
        if d.shape != train.shape {
            return Err(bad(format!(
                "its splits have different feature shapes: {:?} and {:?}",
                train.shape, d.shape
            )));
        }
    }
    Ok(StoredFeatures {
        train,
        validation,
        test,
        class_names,
        metadata,
    })
}
