//! The Llama architecture's hyper-parameters, read from a Hugging Face `config.json` (or built from
//! GGUF metadata), and the rotary-embedding frequencies they imply (incl. Llama-3 scaling).

use ferrotune_config::load;
use serde::{Deserialize, Serialize};

/// Llama-3 style frequency-dependent RoPE scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Llama3RopeScaling {
    /// Divisor applied to low frequencies.
    pub factor: f64,
    /// Wavelengths longer than `original_max_position_embeddings / low_freq_factor` are scaled.
    pub low_freq_factor: f64,
    /// Wavelengths shorter than `original_max_position_embeddings / high_freq_factor` are kept.
    pub high_freq_factor: f64,
    /// Context length the base model was trained with.
    pub original_max_position_embeddings: usize,
}

/// Hyper-parameters of a Llama-architecture decoder (SmolLM2, Llama 3.x).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// Llama-3 RoPE scaling, when the model uses it.
    pub rope_scaling: Option<Llama3RopeScaling>,
    /// Longest supported context.
    pub max_position_embeddings: usize,
    /// The output projection shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids (generation stops at any of them).
    pub eos_token_ids: Vec<u32>,
}

/// `config.json` as Hugging Face writes it (transformers 4 and 5 spellings).
#[derive(Deserialize)]
struct HfConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    rope_parameters: Option<serde_json::Value>,
    #[serde(default = "default_max_pos")]
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    bos_token_id: Option<u32>,
    eos_token_id: Option<serde_json::Value>,
    model_type: Option<String>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    2048
}

impl LlamaConfig {
    /// Parses a Hugging Face `config.json`.
    pub fn from_hf_json(text: &str) -> anyhow::Result<Self> {
        let value = serde_json::from_str(text).map_err(|e| anyhow::anyhow!("invalid JSON: {e}"))?;
        let hf: HfConfig = load::deserialize(value).map_err(|p| match p.field.as_str() {
            load::TOP_LEVEL => anyhow::anyhow!("{}", p.message),
            field => anyhow::anyhow!("field `{field}`: {}", p.message),
        })?;
        anyhow::ensure!(
            hf.num_attention_heads > 0
                && hf.hidden_size > 0
                && hf.num_hidden_layers > 0
                && hf.vocab_size > 0,
            "vocab_size, hidden_size, num_hidden_layers and num_attention_heads must be positive"
        );
        if let Some(t) = &hf.model_type {
            anyhow::ensure!(
                t == "llama",
                "model_type `{t}` is not supported: ferrotune trains Llama-architecture models"
            );
        }
        // transformers 5 folds rope_theta and rope_scaling into rope_parameters.
        let rope = hf.rope_parameters.as_ref().or(hf.rope_scaling.as_ref());
        let rope_theta = hf
            .rope_theta
            .or_else(|| hf.rope_parameters.as_ref()?.get("rope_theta")?.as_f64())
            .unwrap_or(10_000.0);
        let rope_scaling = match rope {
            Some(v) if rope_type(v) == Some("llama3") => Some(serde_json::from_value(v.clone())?),
            Some(v) if matches!(rope_type(v), None | Some("default")) => None,
            Some(v) => anyhow::bail!(
                "rope type `{}` is not supported (default and llama3 are)",
                rope_type(v).unwrap_or("?")
            ),
            None => None,
        };
        let eos_token_ids = match hf.eos_token_id {
            None | Some(serde_json::Value::Null) => vec![],
            Some(serde_json::Value::Array(ids)) => ids
                .iter()
                .filter_map(|v| v.as_u64().map(|v| v as u32))
                .collect(),
            Some(v) => vec![
                v.as_u64()
                    .ok_or_else(|| anyhow::anyhow!("eos_token_id must be an integer or a list"))?
                    as u32,
            ],
        };
        let cfg = Self {
            vocab_size: hf.vocab_size,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_hidden_layers: hf.num_hidden_layers,
            num_attention_heads: hf.num_attention_heads,
            num_key_value_heads: hf.num_key_value_heads.unwrap_or(hf.num_attention_heads),
            head_dim: hf
                .head_dim
                .unwrap_or(hf.hidden_size / hf.num_attention_heads),
            rms_norm_eps: hf.rms_norm_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings: hf.max_position_embeddings,
            tie_word_embeddings: hf.tie_word_embeddings,
            bos_token_id: hf.bos_token_id,
            eos_token_ids,
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// Writes a `config.json` that transformers' `LlamaForCausalLM` loads.
    pub fn to_hf_json(&self, torch_dtype: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": false,
            "mlp_bias": false,
            "torch_dtype": torch_dtype,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": match self.eos_token_ids.as_slice() {
                [one] => serde_json::json!(one),
                many => serde_json::json!(many),
            },
        });
        if let Some(s) = &self.rope_scaling {
            let mut scaling = serde_json::to_value(s).expect("plain struct");
            scaling["rope_type"] = "llama3".into();
            v["rope_scaling"] = scaling;
        }
        v
    }

    /// Rejects shapes the kernels cannot run.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.num_key_value_heads > 0,
            "num_key_value_heads must be positive"
        );
        anyhow::ensure!(
            self.num_attention_heads
                .is_multiple_of(self.num_key_value_heads),
            "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
            self.num_attention_heads,
            self.num_key_value_heads
        );
        anyhow::ensure!(
            self.head_dim.is_multiple_of(2),
            "head_dim ({}) must be even for RoPE",
            self.head_dim
        );
        // Every weight's element count must fit in a usize: a damaged header must not overflow
        // the shape arithmetic of the loaders and the model.
        let h = self.hidden_size;
        let elements = |rows: Option<usize>| rows.and_then(|r| r.checked_mul(h));
        anyhow::ensure!(
            [
                Some(self.vocab_size),
                Some(self.intermediate_size),
                self.num_attention_heads.checked_mul(self.head_dim),
                self.num_key_value_heads.checked_mul(self.head_dim),
            ]
            .into_iter()
            .all(|rows| elements(rows).is_some()),
            "the sizes overflow: vocab_size {}, intermediate_size {}, num_attention_heads {} and \
             num_key_value_heads {} of head_dim {}, each times hidden_size {h}, must fit in {} bits",
            self.vocab_size,
            self.intermediate_size,
            self.num_attention_heads,
            self.num_key_value_heads,
            self.head_dim,
            usize::BITS
        );
        Ok(())
    }

    /// Inverse RoPE frequencies (head_dim / 2 of them), computed as transformers does, with
    /// Llama-3 scaling applied when configured.
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let dim = self.head_dim;
        let base: Vec<f32> = (0..dim / 2)
            .map(|i| {
                let exponent = (2 * i) as f32 / dim as f32;
                1.0 / (self.rope_theta as f32).powf(exponent)
            })
            .collect();
        let Some(s) = &self.rope_scaling else {
            return base;
        };
        let old = s.original_max_position_embeddings as f32;
        let low_wavelen = old / s.low_freq_factor as f32;
        let high_wavelen = old / s.high_freq_factor as f32;
        base.into_iter()
            .map(|f| {
                let wavelen = 2.0 * std::f32::consts::PI / f;
                if wavelen < high_wavelen {
                    f
                } else if wavelen > low_wavelen {
                    f / s.factor as f32
                } else {
                    let smooth = (old / wavelen - s.low_freq_factor as f32)
                        / (s.high_freq_factor as f32 - s.low_freq_factor as f32);
                    (1.0 - smooth) * f / s.factor as f32 + smooth * f
                }
            })
            .collect()
    }

    /// Query heads sharing one key/value head.
    pub fn gqa_group(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }
}

fn rope_type(v: &serde_json::Value) -> Option<&str> {
    v.get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(|t| t.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA32_1B: &str = r#"{
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
        "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0, "max_position_embeddings": 131072, "tie_word_embeddings": true,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}"#;

    #[test]
    fn reads_llama32_config_and_round_trips() {
        let cfg = LlamaConfig::from_hf_json(LLAMA32_1B).unwrap();
        assert_eq!(cfg.gqa_group(), 4);
        assert_eq!(cfg.eos_token_ids, vec![128001, 128008, 128009]);
        let scaling = cfg.rope_scaling.as_ref().unwrap();
        assert_eq!(scaling.factor, 32.0);
        let back = LlamaConfig::from_hf_json(&cfg.to_hf_json("float32").to_string()).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let cfg = LlamaConfig::from_hf_json(LLAMA32_1B).unwrap();
        let scaled = cfg.rope_inv_freq();
        let plain = LlamaConfig {
            rope_scaling: None,
            ..cfg
        }
        .rope_inv_freq();
        assert_eq!(scaled[0], plain[0], "the highest frequency is unchanged");
        let last = plain.len() - 1;
        assert!(
            (scaled[last] - plain[last] / 32.0).abs() < 1e-12,
            "the lowest frequency is divided by the factor"
        );
    }
}
