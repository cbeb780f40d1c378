//! Indexing a safetensors file (the `safetensors` crate validates the header; the data stays
//! in the memory map).

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype as StDtype, SafeTensorError};

use super::WeightsError;
use super::file::{Bytes, Dtype, TensorInfo, WeightsFile};

fn dtype(d: StDtype) -> Option<Dtype> {
    Some(match d {
        StDtype::F64 => Dtype::F64,
        StDtype::F32 => Dtype::F32,
        StDtype::F16 => Dtype::F16,
        StDtype::BF16 => Dtype::BF16,
        StDtype::I64 => Dtype::I64,
        StDtype::I32 => Dtype::I32,
        StDtype::I16 => Dtype::I16,
        StDtype::I8 => Dtype::I8,
        StDtype::U8 => Dtype::U8,
        StDtype::BOOL => Dtype::Bool,
        _ => return None,
    })
}

pub(crate) fn read(wf: &mut WeightsFile) -> Result<(), WeightsError> {
    let path = wf.path.clone();
    let (header, meta) = SafeTensors::read_metadata(&wf.map).map_err(|e| match e {
        SafeTensorError::MetadataIncompleteBuffer | SafeTensorError::InvalidHeaderLength => {
            WeightsError::Truncated {
                path: path.clone(),
                what: format!("the safetensors header or data is incomplete ({e})"),
            }
        }
        e => WeightsError::Safetensors {
            path: path.clone(),
            reason: e.to_string(),
        },
    })?;
    let data_start = 8 + header;
    let mut infos: Vec<(String, _)> = meta.tensors().into_iter().collect();
    infos.sort_by_key(|(_, i)| i.data_offsets.0);
    for (name, info) in infos {
        let Some(dt) = dtype(info.dtype) else {
            return Err(WeightsError::Dtype {
                path,
                name,
                dtype: format!("{:?}", info.dtype),
            });
        };
        let (start, end) = info.data_offsets;
        let shape = info.shape.clone();
        let mut strides = vec![1usize; shape.len()];
        for a in (0..shape.len().saturating_sub(1)).rev() {
            strides[a] = strides[a + 1] * shape[a + 1];
        }
        wf.storages.push(Bytes::Mapped {
            start: data_start + start,
            len: end - start,
        });
        wf.tensors.push(TensorInfo {
            name,
            dtype: dt,
            shape,
            storage: wf.storages.len() - 1,
            offset: 0,
            strides,
        });
    }
    if let Some(m) = meta.metadata() {
        wf.metadata = m.clone();
    }
    Ok(())
}
