//! [`WeightsFile`]: a weights file opened and indexed — every tensor's name, dtype, shape and
//! where its elements lie — without converting any data. The file is memory-mapped; tensors
//! are read (and converted to `f32`, in row-major order of their PyTorch shape) on demand.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::WeightsError;

/// Element types found in weights files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Dtype::F64 => "F64",
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I64 => "I64",
            Dtype::I32 => "I32",
            Dtype::I16 => "I16",
            Dtype::I8 => "I8",
            Dtype::U8 => "U8",
            Dtype::Bool => "BOOL",
        };
        f.pad(s)
    }
}

/// Which format a file was read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    /// PyTorch ≥ 1.6: a zip holding `data.pkl` and one entry per storage.
    TorchZip,
    /// PyTorch's legacy format: a sequence of pickles followed by the raw storages.
    TorchLegacy,
}

impl Format {
    /// Whether the file keeps the order in which the model registered its tensors (pickled
    /// state dicts do; safetensors sorts them by name).
    pub fn keeps_order(self) -> bool {
        !matches!(self, Format::Safetensors)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Safetensors => "safetensors",
            Format::TorchZip => "PyTorch (zip)",
            Format::TorchLegacy => "PyTorch (legacy)",
        })
    }
}

/// Where a storage's bytes are.
#[derive(Clone, Debug)]
pub(crate) enum Bytes {
    /// `len` bytes from `start` in the mapped file.
    Mapped { start: usize, len: usize },
    /// Decompressed from a zip entry.
    Owned(Vec<u8>),
}

/// One tensor: a strided view of a storage.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    /// PyTorch's shape (conv weights OIHW, linear `[out, in]`).
    pub shape: Vec<usize>,
    pub(crate) storage: usize,
    /// Offset of the first element, in elements.
    pub(crate) offset: usize,
    /// In elements.
    pub(crate) strides: Vec<usize>,
}

impl TensorInfo {
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An opened weights file.
pub struct WeightsFile {
    pub path: PathBuf,
    pub format: Format,
    /// In the file's order (for safetensors, the order of the data).
    pub tensors: Vec<TensorInfo>,
    /// Safetensors metadata (cnntui records the preprocessing there).
    pub metadata: HashMap<String, String>,
    pub(crate) map: Mmap,
    pub(crate) storages: Vec<Bytes>,
}

impl fmt::Debug for WeightsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeightsFile")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// A safetensors file starts with its header's length (u64, little-endian), then the
/// header's `{`. Checked before a legacy PyTorch file's `0x80`: a header length whose low byte
/// is 0x80 (one checkpoint in 256) starts with that byte too, while a legacy file's byte 8
/// lies inside its magic number (`0x1950a86a20f9469cfc6c`), never `{`.
fn is_safetensors(b: &[u8]) -> bool {
    b.len() >= 9 && b[8] == b'{'
}

impl WeightsFile {
    /// Opens `path`, recognising its format by content, and checks that every tensor lies
    /// within the file.
    ///
    /// # Errors
    /// [`WeightsError::Read`], [`WeightsError::NotWeights`], [`WeightsError::Truncated`] and
    /// the format's own errors, each naming the file.
    pub fn open(path: &Path) -> Result<WeightsFile, WeightsError> {
        let read = |source| WeightsError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let len = file.metadata().map_err(read)?.len();
        if len == 0 {
            return Err(WeightsError::NotWeights {
                path: path.to_path_buf(),
                hint: ": the file is empty".into(),
            });
        }
        // SAFETY: the map is read-only and lives as long as the `WeightsFile`. Another process
        // truncating or rewriting the file while it is mapped would change what we read (or
        // raise SIGBUS); weights files are not written while a model loads them, and every
        // access is bounds-checked against the length taken here.
        let map = unsafe { Mmap::map(&file) }.map_err(read)?;
        let mut wf = WeightsFile {
            path: path.to_path_buf(),
            format: Format::Safetensors,
            tensors: Vec::new(),
            metadata: HashMap::new(),
            map,
            storages: Vec::new(),
        };
        let head = &wf.map[..wf.map.len().min(16)];
        if head.starts_with(b"PK\x03\x04") {
            wf.format = Format::TorchZip;
            super::torch::read_zip(&mut wf)?;
        } else if is_safetensors(head) {
            super::safetensors_file::read(&mut wf)?;
        } else if head.first() == Some(&0x80) {
            wf.format = Format::TorchLegacy;
            super::torch::read_legacy(&mut wf)?;
        } else {
            let hint = if head.starts_with(b"PK") {
                ": it is a zip archive without PyTorch's data.pkl"
            } else if head.starts_with(b"\x89HDF") {
                ": it is HDF5 (Keras .h5); convert it to safetensors"
            } else if std::str::from_utf8(head).is_ok() {
                ": it is text"
            } else {
                ""
            };
            return Err(WeightsError::NotWeights {
                path: path.to_path_buf(),
                hint: hint.to_string(),
            });
        }
        wf.check_bounds()?;
        Ok(wf)
    }

    fn storage_bytes(&self, i: usize) -> &[u8] {
        match &self.storages[i] {
            Bytes::Mapped { start, len } => &self.map[*start..*start + *len],
            Bytes::Owned(v) => v,
        }
    }

    /// Every tensor's last element must lie inside its storage.
    fn check_bounds(&self) -> Result<(), WeightsError> {
        for t in &self.tensors {
            if t.elems() == 0 {
                continue;
            }
            let available = self.storage_bytes(t.storage).len();
            let last = t
                .shape
                .iter()
                .zip(&t.strides)
                .try_fold(t.offset, |acc, (&d, &s)| {
                    (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
                });
            let needed = last
                .and_then(|l| l.checked_add(1))
                .and_then(|l| l.checked_mul(t.dtype.size()));
            match needed {
                Some(needed) if needed <= available => {}
                needed => {
                    return Err(WeightsError::OutOfBounds {
                        path: self.path.clone(),
                        name: t.name.clone(),
                        needed: needed.unwrap_or(usize::MAX),
                        available,
                    });
                }
            }
        }
        Ok(())
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A tensor's elements as `f32`, row-major in its shape (strides and dtype resolved).
    ///
    /// # Errors
    /// [`WeightsError::Dtype`] for a tensor that is not floating-point.
    pub fn read_f32(&self, t: &TensorInfo) -> Result<Vec<f32>, WeightsError> {
        let conv: fn(&[u8]) -> f32 = match t.dtype {
            Dtype::F32 => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Dtype::F64 => |b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[..8]);
                f64::from_le_bytes(a) as f32
            },
            Dtype::F16 => |b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
            Dtype::BF16 => |b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16),
            other => {
                return Err(WeightsError::Dtype {
                    path: self.path.clone(),
                    name: t.name.clone(),
                    dtype: other.to_string(),
                });
            }
        };
        let bytes = self.storage_bytes(t.storage);
        let size = t.dtype.size();
        let n = t.elems();
        let mut out = Vec::with_capacity(n);
        if n == 0 {
            return Ok(out);
        }
        // Row-major strides of the shape: when they match, the tensor is one contiguous run.
        let mut contiguous = true;
        let mut expect = 1;
        for (&d, &s) in t.shape.iter().zip(&t.strides).rev() {
            if d != 1 && s != expect {
                contiguous = false;
            }
            expect *= d;
        }
        if contiguous {
            let run = &bytes[t.offset * size..(t.offset + n) * size];
            out.extend(run.chunks_exact(size).map(conv));
            return Ok(out);
        }
        let mut index = vec![0usize; t.shape.len()];
        for _ in 0..n {
            let at = t.offset
                + index
                    .iter()
                    .zip(&t.strides)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            out.push(conv(&bytes[at * size..(at + 1) * size]));
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < t.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Ok(out)
    }
}

/// IEEE half to single precision (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let shift = f.leading_zeros() - 21;
            let f = (f << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (f << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::{WeightsFile, f16_to_f32};

    /// A safetensors file whose header length ends in the byte 0x80 — the first byte of a
    /// pickle — is still read as safetensors (a MobileNetV2 checkpoint once was not).
    #[test]
    fn a_safetensors_header_length_ending_in_0x80_is_not_a_pickle() {
        use safetensors::tensor::{Dtype, TensorView};
        let data = [0u8; 8];
        let bytes = (0..256)
            .map(|pad| {
                let view = TensorView::new(Dtype::F32, vec![2], &data).expect("view");
                let meta = [("pad".to_string(), "x".repeat(pad))].into_iter().collect();
                safetensors::serialize([("t", view)], Some(meta)).expect("serialises")
            })
            .find(|b| b[0] == 0x80)
            .expect("some padding gives a header length of 0x..80");
        let path = std::env::temp_dir().join(format!("cnntui-0x80-{}.st", std::process::id()));
        std::fs::write(&path, &bytes).expect("writes");
        let opened = WeightsFile::open(&path);
        let _ = std::fs::remove_file(&path);
        let wf = opened.expect("reads as safetensors");
        assert_eq!(wf.tensors.len(), 1);
    }

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0200), 2f32.powi(-15));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
