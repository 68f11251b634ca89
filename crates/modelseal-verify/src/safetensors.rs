//! safetensors files read through a [`ModelReader`]: the header is verified and
//! checked first (length bounds, JSON, dtypes, shapes, offsets inside the file, no
//! overlaps), then each tensor's bytes are verified when it is read.

use std::collections::BTreeMap;

use crate::loader::{Granule, ModelReader, ReadError};

/// Largest header accepted (the `safetensors` package's own limit).
pub const MAX_HEADER_BYTES: u64 = 100 << 20;

/// Why a safetensors file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SafetensorsError {
    /// Reading or verifying bytes failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The header's declared length is impossible.
    #[error(
        "{path}: header length {len} is larger than the file or the {MAX_HEADER_BYTES}-byte limit"
    )]
    HeaderLength {
        /// The file.
        path: String,
        /// The declared length.
        len: u64,
    },
    /// The header is not the JSON safetensors expects.
    #[error("{path}: invalid safetensors header: {reason}")]
    Header {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No tensor of that name.
    #[error("{path}: no tensor named {name:?}")]
    NoTensor {
        /// The file.
        path: String,
        /// The name asked for.
        name: String,
    },
}

/// A tensor's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Element type, as safetensors names it (`F32`, `BF16`, `I64`…).
    pub dtype: String,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Byte range inside the file (header included).
    pub range: std::ops::Range<u64>,
}

/// A verified tensor.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// Its description.
    pub info: TensorInfo,
    /// Its bytes, verified against the signed root.
    pub data: Vec<u8>,
}

/// An opened safetensors file of a signed model.
#[derive(Debug)]
pub struct SafeTensors<'a> {
    reader: &'a ModelReader,
    path: String,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
    /// The whole file, verified, when it can only be verified whole (no outboard, an
    /// OMS `files` digest): read once at open and every tensor served from it.
    whole: Option<Vec<u8>>,
}

/// Bits per element of a safetensors dtype (F4 and F6 pack below a byte).
pub fn element_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "U16" | "I16" | "F16" | "BF16" => 16,
        "U32" | "I32" | "F32" => 32,
        "U64" | "I64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

impl<'a> SafeTensors<'a> {
    /// Reads and checks the header of `path` (a signed file of `reader`'s model). A file
    /// that can only be verified whole is read (once) here, and tensors come from that.
    pub fn open(reader: &'a ModelReader, path: &str) -> Result<Self, SafetensorsError> {
        if reader.granule(path)? == Granule::File {
            let all = reader.read_file(path)?;
            let (tensors, metadata) = parse_file(path, &all)?;
            return Ok(Self {
                reader,
                path: path.to_owned(),
                tensors,
                metadata,
                whole: Some(all),
            });
        }
        let size = reader.size(path)?;
        check_size(path, size)?;
        let prefix = reader.read_range(path, 0..8)?;
        let len = header_len(path, size, &prefix)?;
        let header = reader.read_range(path, 8..8 + len)?;
        let (tensors, metadata) = parse_header(path, size, &header)?;
        Ok(Self {
            reader,
            path: path.to_owned(),
            tensors,
            metadata,
            whole: None,
        })
    }

    /// Tensor names, sorted.
    pub fn keys(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// The header's `__metadata__`.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// A tensor's description, without reading it.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    fn lookup(&self, name: &str) -> Result<&TensorInfo, SafetensorsError> {
        self.tensors
            .get(name)
            .ok_or_else(|| SafetensorsError::NoTensor {
                path: self.path.clone(),
                name: name.to_owned(),
            })
    }

    /// Reads and verifies one tensor.
    pub fn tensor(&self, name: &str) -> Result<Tensor, SafetensorsError> {
        let info = self.lookup(name)?;
        let data = match &self.whole {
            Some(all) => all[info.range.start as usize..info.range.end as usize].to_vec(),
            None => self.reader.read_range(&self.path, info.range.clone())?,
        };
        Ok(Tensor {
            info: info.clone(),
            data,
        })
    }

    /// Reads and verifies one tensor straight into `buf`, which must be exactly its size:
    /// with an outboard, only the groups it touches are read, and its bytes are copied
    /// once (from the file into `buf`).
    pub fn tensor_into(&self, name: &str, buf: &mut [u8]) -> Result<(), SafetensorsError> {
        let info = self.lookup(name)?;
        let len = info.range.end - info.range.start;
        if buf.len() as u64 != len {
            return Err(ReadError::OutOfBounds {
                path: self.path.clone(),
                start: info.range.start,
                end: info.range.start + buf.len() as u64,
                size: len,
            }
            .into());
        }
        match &self.whole {
            Some(all) => {
                buf.copy_from_slice(&all[info.range.start as usize..info.range.end as usize])
            }
            None => self.reader.read_into(&self.path, info.range.start, buf)?,
        }
        Ok(())
    }
}

fn check_size(path: &str, size: u64) -> Result<(), SafetensorsError> {
    if size < 8 {
        return Err(SafetensorsError::Header {
            path: path.to_owned(),
            reason: format!("file is {size} bytes, shorter than the 8-byte length prefix"),
        });
    }
    Ok(())
}

fn header_len(path: &str, size: u64, prefix: &[u8]) -> Result<u64, SafetensorsError> {
    let len = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
    if len > MAX_HEADER_BYTES || len > size - 8 {
        return Err(SafetensorsError::HeaderLength {
            path: path.to_owned(),
            len,
        });
    }
    Ok(len)
}

/// Checks the header of a whole safetensors file held in memory (verified by the
/// caller): length prefix, then [`parse_header`].
pub fn parse_file(path: &str, all: &[u8]) -> Result<Header, SafetensorsError> {
    let size = all.len() as u64;
    check_size(path, size)?;
    let len = header_len(path, size, &all[..8])?;
    parse_header(path, size, &all[8..8 + len as usize])
}

/// Tensors by name, and `__metadata__`.
pub type Header = (BTreeMap<String, TensorInfo>, BTreeMap<String, String>);

/// Checks the JSON header of a safetensors file of `size` bytes whose header is `header`
/// (the bytes after the 8-byte length): every entry's dtype, shape and offsets, and the
/// tensors tiling the data section exactly (the `safetensors` package's own rule: in
/// offset order each starts where the one before ended, the first at 0, the last at the
/// end of the file). A name given twice is refused (serde and Python keep the last, a
/// streaming reader the first). `path` names the file in errors.
pub fn parse_header(path: &str, size: u64, header: &[u8]) -> Result<Header, SafetensorsError> {
    let bad = |reason: String| SafetensorsError::Header {
        path: path.to_owned(),
        reason,
    };
    if header.first() != Some(&b'{') {
        return Err(bad("the header does not start with '{'".into()));
    }
    modelseal_core::json::check_keys(header, modelseal_core::json::KeyRule::Exact)
        .map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(format!("not a JSON object: {e}")))?;
    let base = 8 + header.len() as u64;
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (name, value) in json {
        if name == "__metadata__" {
            let map: BTreeMap<String, String> = serde_json::from_value(value)
                .map_err(|e| bad(format!("__metadata__ must map strings to strings: {e}")))?;
            metadata = map;
            continue;
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            dtype: String,
            shape: Vec<u64>,
            data_offsets: [u64; 2],
        }
        let entry: Entry =
            serde_json::from_value(value).map_err(|e| bad(format!("tensor {name:?}: {e}")))?;
        let [begin, end] = entry.data_offsets;
        let bits = element_bits(&entry.dtype)
            .ok_or_else(|| bad(format!("tensor {name:?}: unknown dtype {}", entry.dtype)))?;
        let total_bits = entry
            .shape
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .and_then(|n| n.checked_mul(bits));
        if total_bits.is_some_and(|b| b % 8 != 0) {
            return Err(bad(format!(
                "tensor {name:?}: {} {:?} does not fill whole bytes",
                entry.dtype, entry.shape
            )));
        }
        let count = total_bits.map(|b| b / 8);
        if begin > end || base.checked_add(end).is_none_or(|e| e > size) {
            return Err(bad(format!(
                "tensor {name:?}: offsets {begin}..{end} are outside the file"
            )));
        }
        if count != Some(end - begin) {
            return Err(bad(format!(
                "tensor {name:?}: {} {:?} needs {count:?} bytes, its offsets span {}",
                entry.dtype,
                entry.shape,
                end - begin
            )));
        }
        tensors.insert(
            name,
            TensorInfo {
                dtype: entry.dtype,
                shape: entry.shape,
                range: base + begin..base + end,
            },
        );
    }
    let mut spans: Vec<(&String, &TensorInfo)> = tensors.iter().collect();
    spans.sort_by_key(|(_, t)| (t.range.start, t.range.end));
    let mut next = base;
    for (name, tensor) in &spans {
        if tensor.range.start < next {
            return Err(bad(format!("tensor {name:?} overlaps the one before it")));
        }
        if tensor.range.start > next {
            return Err(bad(format!(
                "{} bytes before tensor {name:?} belong to no tensor",
                tensor.range.start - next
            )));
        }
        next = tensor.range.end;
    }
    if next != size {
        return Err(bad(format!(
            "{} bytes after the last tensor belong to no tensor",
            size - next
        )));
    }
    Ok((tensors, metadata))
}
