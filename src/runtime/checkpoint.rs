//! Checkpoints in safetensors: the weights under layer-qualified names (`conv2d/kernel`, conv
//! kernels HWIO), the optimizer state under `optimizer/{layer}/{param}/{slot}`, and in the
//! metadata everything `--resume` needs to continue exactly (epoch, position, learning rate,
//! the trainable set, the random generators' states, a hash of the model file).
//!
//! Files are written atomically: a temporary file beside the target, then a rename.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use super::{Optimizer, ParamStore};
use crate::ir::Graph;

/// Where training stood when the checkpoint was written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The epoch in progress (0-based).
    pub epoch: usize,
    /// Batches of that epoch already done.
    pub batch: usize,
    pub learning_rate: f64,
    pub optimizer: String,
    pub optimizer_step: u64,
    /// Names of the trainable layers.
    pub trainable: Vec<String>,
    /// State of the shuffling generator at the start of `epoch` (redrawing the permutation
    /// from it gives the same order).
    pub epoch_rng: [u64; 4],
    /// State of the dropout generator.
    pub dropout_rng: [u64; 4],
    /// sha256 of the model file's text.
    pub model_hash: String,
    /// Running sums of the epoch so far: loss sum, correct, samples.
    pub epoch_loss_sum: f64,
    pub epoch_correct: usize,
    pub epoch_seen: usize,
    /// The preprocessing the weights were imported with (`crate::weights::Preprocessing` as
    /// JSON), so that `predict` on this checkpoint prepares images the same way.
    #[serde(default)]
    pub preprocessing: Option<String>,
}

/// A problem with a checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{}: cannot write the checkpoint", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot read the checkpoint; check the path", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a valid safetensors file ({reason}); pass a checkpoint written by `cnntui train --save`", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("{}: tensor `{name}` has shape {found:?} in the checkpoint but the model needs {expected:?}; the checkpoint belongs to a different model", path.display())]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{}: the checkpoint lacks tensor `{name}` (shape {expected:?}) that the model needs; it belongs to a different model", path.display())]
    MissingTensor {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
    },
    #[error("{}: tensor `{name}` is {dtype}, expected F32", path.display())]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
}

/// A checkpoint read from disk.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub state: Option<TrainState>,
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub use crate::data::write_atomic;

/// Saves weights, optimizer state and training state to `path`.
///
/// # Errors
/// [`CheckpointError::Write`] when the file cannot be written.
pub fn save(
    path: &Path,
    graph: &Graph,
    params: &ParamStore,
    optimizer: &Optimizer,
    state: &TrainState,
) -> Result<(), CheckpointError> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (v, k, name) in ParamStore::names(graph) {
        let shape = graph.nodes[v].params[k].shape.clone();
        owned.push((name.clone(), shape.clone(), to_bytes(&params.tensors[v][k])));
        for (slot, store) in &optimizer.slots {
            owned.push((
                format!("optimizer/{name}/{slot}"),
                shape.clone(),
                to_bytes(&store.tensors[v][k]),
            ));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .filter_map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .ok()
                .map(|t| (n.clone(), t))
        })
        .collect();
    let state_json = serde_json::to_string(state).unwrap_or_default();
    let mut metadata = HashMap::from([
        ("format".to_string(), "cnntui-checkpoint-1".to_string()),
        ("model".to_string(), graph.name.clone()),
        ("train_state".to_string(), state_json),
    ]);
    if let Some(p) = &state.preprocessing {
        metadata.insert(crate::weights::PREPROCESSING_KEY.to_string(), p.clone());
    }
    let bytes =
        safetensors::serialize(views, Some(metadata)).map_err(|e| CheckpointError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    write_atomic(path, &bytes).map_err(|source| CheckpointError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a checkpoint (or any safetensors file of f32 tensors).
///
/// # Errors
/// Read, format and dtype errors naming the file.
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let format = |reason: String| CheckpointError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| format(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format(e.to_string()))?;
    let state = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("train_state"))
        .map(|s| {
            serde_json::from_str::<TrainState>(s)
                .map_err(|e| format(format!("bad train_state metadata: {e}")))
        })
        .transpose()?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(CheckpointError::Dtype {
                path: path.to_path_buf(),
                name,
                dtype: format!("{:?}", view.dtype()),
            });
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name, (view.shape().to_vec(), data));
    }
    Ok(Checkpoint {
        path: path.to_path_buf(),
        tensors,
        state,
    })
}

impl Checkpoint {
    /// Copies the tensors of the layers named in `only` (all layers when `None`) into
    /// `params`. Every needed tensor must be present with the model's shape; nothing is
    /// changed unless all are.
    ///
    /// # Errors
    /// [`CheckpointError::MissingTensor`] and [`CheckpointError::Shape`] naming the tensor.
    pub fn apply(
        &self,
        graph: &Graph,
        params: &mut ParamStore,
        only: Option<&[String]>,
    ) -> Result<(), CheckpointError> {
        let wanted: Vec<(usize, usize, String)> = ParamStore::names(graph)
            .into_iter()
            .filter(|(v, _, _)| only.is_none_or(|o| o.contains(&graph.nodes[*v].name)))
            .collect();
        for (v, k, name) in &wanted {
            let expected = &graph.nodes[*v].params[*k].shape;
            match self.tensors.get(name) {
                None => {
                    return Err(CheckpointError::MissingTensor {
                        path: self.path.clone(),
                        name: name.clone(),
                        expected: expected.clone(),
                    });
                }
                Some((shape, _)) if shape != expected => {
                    return Err(CheckpointError::Shape {
                        path: self.path.clone(),
                        name: name.clone(),
                        found: shape.clone(),
                        expected: expected.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        for (v, k, name) in wanted {
            if let Some((_, data)) = self.tensors.get(&name) {
                params.tensors[v][k].copy_from_slice(data);
            }
        }
        Ok(())
    }

    /// Restores the optimizer's slots; slots absent from the file stay zero.
    pub fn apply_optimizer(&self, graph: &Graph, optimizer: &mut Optimizer) {
        for (v, k, name) in ParamStore::names(graph) {
            for (slot, store) in &mut optimizer.slots {
                if let Some((_, data)) = self.tensors.get(&format!("optimizer/{name}/{slot}"))
                    && data.len() == store.tensors[v][k].len()
                {
                    store.tensors[v][k].copy_from_slice(data);
                }
            }
        }
    }
}
