//! PyTorch's two serialisation formats, read without Python.
//!
//! - **Zip** (PyTorch ≥ 1.6): `PREFIX/data.pkl` is the pickled state dict, whose tensors name
//!   their storages by key; storage `k` is the entry `PREFIX/data/k` (stored uncompressed by
//!   PyTorch, so it stays in the memory map), little-endian unless `PREFIX/byteorder` says
//!   otherwise.
//! - **Legacy**: five things in a row — the pickled magic number `0x1950a86a20f9469cfc6c`, the
//!   protocol version 1001, a `sys_info` dict, the pickled state dict, the pickled list of
//!   storage keys — then each storage in that order as an `i64` element count followed by its
//!   little-endian elements.

use std::collections::HashMap;
use std::io::Read;

use super::WeightsError;
use super::file::{Bytes, Dtype, TensorInfo, WeightsFile};
use super::pickle::{PickleError, TensorRef, Value, unpickle};

const LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;

fn pickle_error(wf: &WeightsFile, e: PickleError) -> WeightsError {
    if e.truncated {
        WeightsError::Truncated {
            path: wf.path.clone(),
            what: format!("a pickle ends early (at byte {})", e.offset),
        }
    } else {
        WeightsError::Pickle {
            path: wf.path.clone(),
            offset: e.offset,
            problem: e.problem,
        }
    }
}

/// The tensors of an unpickled object: a state dict, or a training checkpoint holding one
/// under a usual key.
fn state_dict(wf: &WeightsFile, v: Value) -> Result<Vec<(String, TensorRef)>, WeightsError> {
    let unsupported = |problem: String| WeightsError::Unsupported {
        path: wf.path.clone(),
        problem,
    };
    let Value::Dict(entries) = v else {
        return Err(unsupported(
            "the file holds no state dict (a dict of tensors); save `model.state_dict()`".into(),
        ));
    };
    let tensors: Vec<(String, TensorRef)> = entries
        .iter()
        .filter_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Tensor(t)) => Some((k.clone(), t.clone())),
            _ => None,
        })
        .collect();
    if !tensors.is_empty() {
        return Ok(tensors);
    }
    for key in [
        "state_dict",
        "model_state_dict",
        "model",
        "module",
        "state_dict_ema",
    ] {
        if let Some((_, inner @ Value::Dict(_))) = entries
            .iter()
            .find(|(k, _)| *k == Value::Str(key.to_string()))
        {
            return state_dict(wf, inner.clone());
        }
    }
    Err(unsupported(
        "the file's dict holds no tensors, nor a state dict under `state_dict` or `model`".into(),
    ))
}

/// Adds the state dict's tensors, numbering storages by key in order of first use.
fn add_tensors(
    wf: &WeightsFile,
    dict: Vec<(String, TensorRef)>,
    storage_of: &mut HashMap<String, (usize, Dtype)>,
) -> Result<Vec<TensorInfo>, WeightsError> {
    let mut tensors = Vec::with_capacity(dict.len());
    for (name, t) in dict {
        let next = storage_of.len();
        let (index, dtype) = *storage_of
            .entry(t.storage.key.clone())
            .or_insert((next, t.storage.dtype));
        if dtype != t.storage.dtype {
            return Err(WeightsError::Unsupported {
                path: wf.path.clone(),
                problem: format!(
                    "storage `{}` is read as both {dtype} and {}",
                    t.storage.key, t.storage.dtype
                ),
            });
        }
        tensors.push(TensorInfo {
            name,
            dtype,
            shape: t.shape,
            storage: index,
            offset: t.offset,
            strides: t.strides,
        });
    }
    Ok(tensors)
}

pub(crate) fn read_zip(wf: &mut WeightsFile) -> Result<(), WeightsError> {
    let zip_err = |wf: &WeightsFile, reason: String| WeightsError::Zip {
        path: wf.path.clone(),
        reason,
    };
    let map_len = wf.map.len();
    // A file that starts like a zip but whose directory (at its end) cannot be read has almost
    // always been cut short.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&wf.map[..])).map_err(|e| {
        WeightsError::Truncated {
            path: wf.path.clone(),
            what: format!("the zip archive's directory, at its end, cannot be read ({e})"),
        }
    })?;
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    let Some(pkl) = names
        .iter()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .cloned()
    else {
        return Err(WeightsError::NotWeights {
            path: wf.path.clone(),
            hint: ": it is a zip archive without PyTorch's data.pkl".into(),
        });
    };
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let read_entry = |archive: &mut zip::ZipArchive<_>, name: &str| -> Result<Vec<u8>, String> {
        let mut f = archive.by_name(name).map_err(|e| e.to_string())?;
        let mut v = Vec::with_capacity(f.size().min(map_len as u64) as usize);
        f.read_to_end(&mut v).map_err(|e| e.to_string())?;
        Ok(v)
    };
    if names.contains(&format!("{prefix}byteorder")) {
        let order =
            read_entry(&mut archive, &format!("{prefix}byteorder")).map_err(|e| zip_err(wf, e))?;
        if order.trim_ascii() != b"little" {
            return Err(WeightsError::Unsupported {
                path: wf.path.clone(),
                problem:
                    "the tensors are stored big-endian; re-save them on a little-endian machine"
                        .into(),
            });
        }
    }
    let pickle = read_entry(&mut archive, &pkl).map_err(|e| zip_err(wf, e))?;
    let (value, _) = unpickle(&pickle, 0).map_err(|e| pickle_error(wf, e))?;
    let dict = state_dict(wf, value)?;
    let mut storage_of = HashMap::new();
    let tensors = add_tensors(wf, dict, &mut storage_of)?;
    let mut storages = Vec::with_capacity(storage_of.len());
    let mut keys: Vec<(usize, String)> = storage_of.iter().map(|(k, v)| (v.0, k.clone())).collect();
    keys.sort();
    for (_, key) in keys {
        let name = format!("{prefix}data/{key}");
        let entry = archive
            .by_name(&name)
            .map_err(|e| WeightsError::Truncated {
                path: wf.path.clone(),
                what: format!("storage entry `{name}` is missing ({e})"),
            })?;
        let stored = entry.compression() == zip::CompressionMethod::Stored;
        let (start, size) = (entry.data_start(), entry.size());
        drop(entry);
        let bytes = match (stored, start) {
            (true, Some(start)) => {
                let (start, len) = (start as usize, size as usize);
                if start.checked_add(len).is_none_or(|end| end > map_len) {
                    return Err(WeightsError::Truncated {
                        path: wf.path.clone(),
                        what: format!("storage entry `{name}` runs past the end of the file"),
                    });
                }
                Bytes::Mapped { start, len }
            }
            _ => Bytes::Owned(read_entry(&mut archive, &name).map_err(|e| {
                WeightsError::Truncated {
                    path: wf.path.clone(),
                    what: format!("storage entry `{name}` cannot be read ({e})"),
                }
            })?),
        };
        storages.push(bytes);
    }
    drop(archive);
    wf.tensors = tensors;
    wf.storages = storages;
    Ok(())
}

pub(crate) fn read_legacy(wf: &mut WeightsFile) -> Result<(), WeightsError> {
    let bytes = &wf.map[..];
    let (magic, pos) = unpickle(bytes, 0).map_err(|e| pickle_error(wf, e))?;
    if magic != Value::Int(LEGACY_MAGIC) {
        return Err(WeightsError::NotWeights {
            path: wf.path.clone(),
            hint: ": it is a Python pickle but not a PyTorch file (wrong magic number)".into(),
        });
    }
    let (protocol, pos) = unpickle(bytes, pos).map_err(|e| pickle_error(wf, e))?;
    if protocol != Value::Int(1001) {
        return Err(WeightsError::Unsupported {
            path: wf.path.clone(),
            problem: format!("unknown legacy protocol version {protocol:?} (expected 1001)"),
        });
    }
    let (sys_info, pos) = unpickle(bytes, pos).map_err(|e| pickle_error(wf, e))?;
    if let Value::Dict(d) = &sys_info
        && d.iter()
            .any(|(k, v)| *k == Value::Str("little_endian".into()) && *v == Value::Bool(false))
    {
        return Err(WeightsError::Unsupported {
            path: wf.path.clone(),
            problem: "the tensors are stored big-endian; re-save them on a little-endian machine"
                .into(),
        });
    }
    let (state, pos) = unpickle(bytes, pos).map_err(|e| pickle_error(wf, e))?;
    let (keys, mut pos) = unpickle(bytes, pos).map_err(|e| pickle_error(wf, e))?;
    let Value::List(keys) = keys else {
        return Err(WeightsError::Pickle {
            path: wf.path.clone(),
            offset: pos,
            problem: "the list of storage keys is missing".into(),
        });
    };
    let dict = state_dict(wf, state)?;
    let mut storage_of = HashMap::new();
    let tensors = add_tensors(wf, dict, &mut storage_of)?;
    let mut storages: Vec<Option<Bytes>> = vec![None; storage_of.len()];
    let total = wf.map.len();
    for key in keys {
        let key = match key {
            Value::Str(s) => s,
            Value::Int(i) => i.to_string(),
            _ => {
                return Err(WeightsError::Pickle {
                    path: wf.path.clone(),
                    offset: pos,
                    problem: "a storage key is not a string".into(),
                });
            }
        };
        let truncated = |what: String| WeightsError::Truncated {
            path: wf.path.clone(),
            what,
        };
        if pos + 8 > total {
            return Err(truncated(format!(
                "storage `{key}` is missing (the file ends at byte {total})"
            )));
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&wf.map[pos..pos + 8]);
        let count = u64::from_le_bytes(n);
        pos += 8;
        // A storage no tensor uses still takes its room; its element size is unknown, so it
        // must be the last one or be skipped by the size of the dtype PyTorch gave it —
        // unknowable here. PyTorch only writes storages that tensors use.
        let Some(&(index, dtype)) = storage_of.get(&key) else {
            return Err(WeightsError::Unsupported {
                path: wf.path.clone(),
                problem: format!("storage `{key}` is listed but no tensor uses it"),
            });
        };
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(dtype.size()));
        match len {
            Some(len) if pos.checked_add(len).is_some_and(|end| end <= total) => {
                storages[index] = Some(Bytes::Mapped { start: pos, len });
                pos += len;
            }
            _ => {
                return Err(truncated(format!(
                    "storage `{key}` should hold {count} {dtype} elements from byte {pos}, but \
                     the file ends at byte {total}"
                )));
            }
        }
    }
    let mut ordered = Vec::with_capacity(storages.len());
    for (index, bytes) in storages.into_iter().enumerate() {
        let Some(bytes) = bytes else {
            let key = storage_of
                .iter()
                .find(|(_, v)| v.0 == index)
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            return Err(WeightsError::Truncated {
                path: wf.path.clone(),
                what: format!("storage `{key}` is not in the file"),
            });
        };
        ordered.push(bytes);
    }
    wf.tensors = tensors;
    wf.storages = ordered;
    Ok(())
}
