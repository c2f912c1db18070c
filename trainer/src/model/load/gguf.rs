//! llama.cpp GGUF files: the config from `llama.*` metadata, every tensor dequantised to f32, renamed
//! to Hugging Face names, with llama.cpp's row permutation of `attn_q` / `attn_k` undone.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use anyhow::Context;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use ferrotune_config::TargetModule;

use super::{LoadError, candle_cause, check_block_count, expected_tensors, missing_why};
use crate::model::config::LlamaConfig;
use crate::model::params::ParamId;

/// Whether the file starts with the GGUF magic.
pub(super) fn has_magic(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"GGUF"
}

/// Reads the config and every weight of a llama GGUF.
pub(super) fn load(
    path: &Path,
    device: &Device,
) -> anyhow::Result<(LlamaConfig, HashMap<String, Tensor>)> {
    let mut reader =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let content = read_content(&mut reader, path)?;
    let meta = Metadata {
        content: &content,
        file: path,
    };
    let config = meta.config()?;
    if content.tensor_infos.contains_key("rope_freqs.weight") {
        return Err(LoadError::Unsupported {
            file: path.to_path_buf(),
            what: "it stores RoPE frequency factors (`rope_freqs.weight`, Llama 3.1+ scaling), which this \
                   trainer does not read from GGUF: use the Hugging Face checkpoint (model.hub or a model directory)"
                .to_string(),
        }
        .into());
    }
    check_block_count(
        &config,
        content.tensor_infos.len(),
        path,
        "llama.block_count",
    )?;
    let mut tensors = HashMap::new();
    for (id, expected) in expected_tensors(&config) {
        let name = gguf_name(id);
        let info = content
            .tensor_infos
            .get(&name)
            .ok_or_else(|| LoadError::MissingTensor {
                name: name.clone(),
                file: path.to_path_buf(),
                why: format!(" (Hugging Face `{id}`){}", missing_why(id)),
            })?;
        if info.shape.dims() != expected.as_slice() {
            return Err(LoadError::WrongShape {
                name,
                file: path.to_path_buf(),
                shape: info.shape.dims().to_vec(),
                expected,
            }
            .into());
        }
        let weight = content
            .tensor(&mut reader, &name, &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .with_context(|| format!("reading tensor `{name}` of {}", path.display()))?;
        let weight = match id {
            ParamId::Proj(_, TargetModule::QProj) => {
                unpermute_rows(&weight, config.num_attention_heads)?
            }
            ParamId::Proj(_, TargetModule::KProj) => {
                unpermute_rows(&weight, config.num_key_value_heads)?
            }
            _ => weight,
        };
        tensors.insert(id.hf_name(), weight.to_device(device)?);
    }
    Ok((config, tensors))
}

/// Reads the header (metadata and tensor infos) of the GGUF file at `path`.
pub fn read_header(path: &Path) -> anyhow::Result<Content> {
    let mut reader =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    read_content(&mut reader, path)
}

/// `Content::read`, with the header checks candle 0.11 lacks done first.
fn read_content<R: Read + Seek>(reader: &mut R, path: &Path) -> anyhow::Result<Content> {
    let bad = |problem: &str| LoadError::BadGguf {
        file: path.to_path_buf(),
        problem: problem.to_string(),
    };
    // candle divides by `general.alignment` unchecked: 0 would panic.
    if zero_alignment(reader) {
        return Err(bad("general.alignment is 0; it must be positive, a multiple of 8").into());
    }
    reader.rewind()?;
    Content::read(reader).map_err(|e| header_error(path, e))
}

/// Whether the metadata sets `general.alignment` to an integer 0 (its last entry wins, as in
/// candle's map). Walks the key/value list only, skipping values unread; a header that ends early
/// or is otherwise malformed answers false, for `Content::read` to reject.
fn zero_alignment(reader: &mut impl Read) -> bool {
    const KEY: &[u8] = b"general.alignment";
    fn walk(reader: &mut impl Read) -> std::io::Result<bool> {
        let mut h = HeaderWalk {
            r: reader,
            v1: false,
        };
        let _magic = h.u32()?;
        h.v1 = h.u32()? == 1;
        let _tensors = h.len()?;
        let mut zero = false;
        for _ in 0..h.len()? {
            let key_len = h.len()?;
            let is_alignment = if key_len == KEY.len() as u64 {
                let mut key = [0; KEY.len()];
                h.r.read_exact(&mut key)?;
                key == KEY
            } else {
                h.skip(key_len)?;
                false
            };
            let kind = h.u32()?;
            match (is_alignment, kind) {
                // u8, i8, u16, i16, u32, i32: the integer types candle takes the alignment from.
                (true, 0..=5) => {
                    let mut value = [0; 4];
                    h.r.read_exact(&mut value[..[1, 1, 2, 2, 4, 4][kind as usize]])?;
                    zero = value == [0; 4];
                }
                _ => {
                    zero &= !is_alignment;
                    h.skip_value(kind, 0)?;
                }
            }
        }
        Ok(zero)
    }
    walk(reader).unwrap_or(false)
}

/// A reader over a GGUF header's fields (lengths are u32 in version 1, u64 after).
struct HeaderWalk<'a, R> {
    r: &'a mut R,
    v1: bool,
}

impl<R: Read> HeaderWalk<'_, R> {
    fn u32(&mut self) -> std::io::Result<u32> {
        let mut b = [0; 4];
        self.r.read_exact(&mut b).map(|()| u32::from_le_bytes(b))
    }

    fn len(&mut self) -> std::io::Result<u64> {
        if self.v1 {
            return self.u32().map(u64::from);
        }
        let mut b = [0; 8];
        self.r.read_exact(&mut b).map(|()| u64::from_le_bytes(b))
    }

    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        match std::io::copy(&mut self.r.take(n), &mut std::io::sink())? {
            done if done == n => Ok(()),
            _ => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }

    /// Skips a value of GGUF type `kind` (the spec's numbering) nested `depth` arrays deep.
    fn skip_value(&mut self, kind: u32, depth: usize) -> std::io::Result<()> {
        // candle's nesting limit, which also bounds the recursion.
        if depth > 64 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        match kind {
            0 | 1 | 7 => self.skip(1),
            2 | 3 => self.skip(2),
            4..=6 => self.skip(4),
            10..=12 => self.skip(8),
            8 => {
                let n = self.len()?;
                self.skip(n)
            }
            9 => {
                let elem = self.u32()?;
                // Every element takes at least a byte, so a huge count ends at the end of the file.
                for _ in 0..self.len()? {
                    self.skip_value(elem, depth + 1)?;
                }
                Ok(())
            }
            _ => Err(std::io::ErrorKind::InvalidData.into()),
        }
    }
}

/// Why a GGUF header could not be read: a file that ends early, or what candle says.
fn header_error(path: &Path, e: candle_core::Error) -> anyhow::Error {
    match candle_cause(&e) {
        candle_core::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            LoadError::TruncatedGguf(path.to_path_buf()).into()
        }
        cause => anyhow::anyhow!("reading the GGUF header of {}: {cause}", path.display()),
    }
}

/// The llama.cpp name of a weight.
fn gguf_name(id: ParamId) -> String {
    let block = |layer: usize, short: &str| format!("blk.{layer}.{short}.weight");
    match id {
        ParamId::Embed => "token_embd.weight".to_string(),
        ParamId::FinalNorm => "output_norm.weight".to_string(),
        ParamId::LmHead => "output.weight".to_string(),
        ParamId::AttnNorm(layer) => block(layer, "attn_norm"),
        ParamId::MlpNorm(layer) => block(layer, "ffn_norm"),
        ParamId::Proj(layer, m) => block(
            layer,
            match m {
                TargetModule::QProj => "attn_q",
                TargetModule::KProj => "attn_k",
                TargetModule::VProj => "attn_v",
                TargetModule::OProj => "attn_output",
                TargetModule::GateProj => "ffn_gate",
                TargetModule::UpProj => "ffn_up",
                TargetModule::DownProj => "ffn_down",
            },
        ),
        ParamId::LoraA(..) | ParamId::LoraB(..) => {
            unreachable!("expected_tensors lists base weights only")
        }
    }
}

/// Undoes llama.cpp's conversion-time row order for interleaved RoPE: within each head of `d` rows,
/// GGUF row `2i + s` holds Hugging Face row `s * d/2 + i` (s = 0, 1).
fn unpermute_rows(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    w.reshape((heads, rows / heads / 2, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))
}

/// Typed access to GGUF metadata, with errors naming the file and key.
struct Metadata<'a> {
    content: &'a Content,
    file: &'a Path,
}

impl Metadata<'_> {
    fn config(&self) -> anyhow::Result<LlamaConfig> {
        let arch = self.string("general.architecture")?;
        if arch != "llama" {
            return Err(self.unsupported(format!(
                "architecture `{arch}` is not supported: ferrotune trains Llama-architecture models (`llama`)"
            )));
        }
        if let Some(kind) = self
            .get("llama.rope.scaling.type")
            .and_then(|v| v.to_string().ok())
            && kind != "none"
        {
            return Err(self.unsupported(format!(
                "RoPE scaling `{kind}` is not supported (only unscaled RoPE in GGUF)"
            )));
        }
        let hidden_size = self.usize("llama.embedding_length")?;
        let num_attention_heads = self.usize("llama.attention.head_count")?;
        if num_attention_heads == 0 {
            return Err(self.unsupported(
                "llama.attention.head_count is 0; a model needs at least one head".into(),
            ));
        }
        let head_dim = match self.opt_usize("llama.attention.key_length")? {
            Some(d) => d,
            None => self
                .opt_usize("llama.rope.dimension_count")?
                .unwrap_or(hidden_size / num_attention_heads),
        };
        if let Some(rope_dim) = self.opt_usize("llama.rope.dimension_count")?
            && rope_dim != head_dim
        {
            return Err(self.unsupported(format!(
                "partial rotary embeddings (rope dimension {rope_dim}, head dimension {head_dim}) are not supported"
            )));
        }
        let vocab_size = match self.opt_usize("llama.vocab_size")? {
            Some(v) => v,
            None => match self.get("tokenizer.ggml.tokens") {
                Some(Value::Array(tokens)) => tokens.len(),
                _ => {
                    return Err(self
                        .missing(
                            "llama.vocab_size",
                            "an integer, or a `tokenizer.ggml.tokens` list",
                        )
                        .into());
                }
            },
        };
        let mut eos_token_ids = Vec::new();
        for key in [
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
        ] {
            if let Some(id) = self.opt_usize(key)?
                && !eos_token_ids.contains(&(id as u32))
            {
                eos_token_ids.push(id as u32);
            }
        }
        let config = LlamaConfig {
            vocab_size,
            hidden_size,
            intermediate_size: self.usize("llama.feed_forward_length")?,
            num_hidden_layers: self.usize("llama.block_count")?,
            num_attention_heads,
            num_key_value_heads: self
                .opt_usize("llama.attention.head_count_kv")?
                .unwrap_or(num_attention_heads),
            head_dim,
            rms_norm_eps: self.float("llama.attention.layer_norm_rms_epsilon")?,
            rope_theta: match self.get("llama.rope.freq_base") {
                Some(_) => self.float("llama.rope.freq_base")?,
                None => 10_000.0,
            },
            rope_scaling: None,
            max_position_embeddings: self.usize("llama.context_length")?,
            tie_word_embeddings: !self.content.tensor_infos.contains_key("output.weight"),
            bos_token_id: self
                .opt_usize("tokenizer.ggml.bos_token_id")?
                .map(|id| id as u32),
            eos_token_ids,
        };
        config
            .check()
            .with_context(|| format!("the llama.* metadata of {}", self.file.display()))?;
        Ok(config)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn missing(&self, key: &str, expected: &'static str) -> LoadError {
        LoadError::MissingMetadata {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            expected,
        }
    }

    fn unsupported(&self, what: String) -> anyhow::Error {
        LoadError::Unsupported {
            file: self.file.to_path_buf(),
            what,
        }
        .into()
    }

    fn string(&self, key: &str) -> Result<&str, LoadError> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(self.missing(key, "a string")),
        }
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>, LoadError> {
        let value = match self.get(key) {
            None => return Ok(None),
            Some(Value::U8(v)) => Some(*v as u64),
            Some(Value::U16(v)) => Some(*v as u64),
            Some(Value::U32(v)) => Some(*v as u64),
            Some(Value::U64(v)) => Some(*v),
            Some(Value::I32(v)) => u64::try_from(*v).ok(),
            Some(Value::I64(v)) => u64::try_from(*v).ok(),
            Some(_) => None,
        };
        value
            .map(|v| Some(v as usize))
            .ok_or_else(|| self.missing(key, "a non-negative integer"))
    }

    fn usize(&self, key: &str) -> Result<usize, LoadError> {
        self.opt_usize(key)?
            .ok_or_else(|| self.missing(key, "a non-negative integer"))
    }

    /// A float; f32 values are read as the shortest decimal that round-trips (1e-5, not 9.99999975e-6),
    /// as they were written from decimal configs.
    fn float(&self, key: &str) -> Result<f64, LoadError> {
        match self.get(key) {
            Some(Value::F32(v)) => Ok(v.to_string().parse().expect("a formatted f32 parses")),
            Some(Value::F64(v)) => Ok(*v),
            _ => Err(self.missing(key, "a float")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_restores_rotate_half_order() {
        // Two heads of 4 rows; llama.cpp order within a head is (0, 2, 1, 3) of the HF rows.
        let gguf = Tensor::new(
            &[[0f32], [2.], [1.], [3.], [4.], [6.], [5.], [7.]],
            &Device::Cpu,
        )
        .unwrap();
        let hf = unpermute_rows(&gguf, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(hf, [0., 1., 2., 3., 4., 5., 6., 7.]);
    }

    #[test]
    fn names_map_to_llama_cpp() {
        assert_eq!(
            gguf_name(ParamId::Proj(12, TargetModule::OProj)),
            "blk.12.attn_output.weight"
        );
        assert_eq!(gguf_name(ParamId::MlpNorm(0)), "blk.0.ffn_norm.weight");
        assert_eq!(gguf_name(ParamId::LmHead), "output.weight");
    }
}
