//! The model shapes the benchmark builds (the same as the PyTorch reference's), their parameter
//! counts and the model FLOPs per token used for MFU.

use clap::ValueEnum;
use ferrotune::model::config::{Llama3RopeScaling, LlamaConfig};

/// LoRA shape of the benchmark, as in the reference: r 16, alpha 32, dropout 0.05, all seven
/// projections adapted.
pub const LORA_R: usize = 16;

/// A named Llama shape with random weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// 2 layers, hidden 64: seconds, for smoke tests.
    Tiny,
    /// SmolLM2-135M: 30 layers, hidden 576, vocab 49152, tied.
    #[value(name = "smollm2-135m")]
    Smollm2_135m,
    /// Llama-3.2-1B: 16 layers, hidden 2048, vocab 128256, tied.
    #[value(name = "llama-3.2-1b")]
    Llama32_1b,
    /// Llama-3.2-3B: 28 layers, hidden 3072, vocab 128256, tied.
    #[value(name = "llama-3.2-3b")]
    Llama32_3b,
}

impl Shape {
    /// The name the reference prints for this shape.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Tiny => "tiny",
            Shape::Smollm2_135m => "smollm2-135m",
            Shape::Llama32_1b => "llama-3.2-1b",
            Shape::Llama32_3b => "llama-3.2-3b",
        }
    }

    /// The architecture.
    pub fn config(self) -> LlamaConfig {
        let llama3 = Some(Llama3RopeScaling {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        });
        // (vocab, hidden, ffn, layers, heads, kv heads, head dim, rope base, scaling, context)
        let (vocab, h, ff, layers, heads, kv, dim, theta, rope_scaling, ctx) = match self {
            Shape::Tiny => (512, 64, 128, 2, 4, 2, 16, 10_000.0, None, 2048),
            Shape::Smollm2_135m => (49_152, 576, 1536, 30, 9, 3, 64, 100_000.0, None, 8192),
            Shape::Llama32_1b => (
                128_256, 2048, 8192, 16, 32, 8, 64, 500_000.0, llama3, 131_072,
            ),
            Shape::Llama32_3b => (
                128_256, 3072, 8192, 28, 24, 8, 128, 500_000.0, llama3, 131_072,
            ),
        };
        LlamaConfig {
            vocab_size: vocab,
            hidden_size: h,
            intermediate_size: ff,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            head_dim: dim,
            rms_norm_eps: 1e-5,
            rope_theta: theta,
            rope_scaling,
            max_position_embeddings: ctx,
            tie_word_embeddings: true,
            bos_token_id: Some(0),
            eos_token_ids: vec![0],
        }
    }
}

/// Parameters that take part in matmuls (every projection and the LM head) and the LoRA
/// parameters of the benchmark's adapters.
pub fn matmul_and_lora_params(c: &LlamaConfig) -> (u64, u64) {
    let (h, q, kv, ff) = (
        c.hidden_size,
        c.num_attention_heads * c.head_dim,
        c.num_key_value_heads * c.head_dim,
        c.intermediate_size,
    );
    let linears = [(h, q), (h, kv), (h, kv), (q, h), (h, ff), (h, ff), (ff, h)];
    let per_layer: usize = linears.iter().map(|(i, o)| i * o).sum();
    let lora_per_layer: usize = linears.iter().map(|(i, o)| LORA_R * (i + o)).sum();
    let layers = c.num_hidden_layers;
    (
        (layers * per_layer + c.vocab_size * h) as u64,
        (layers * lora_per_layer) as u64,
    )
}

/// Model FLOPs per trained token, counted as the reference counts them: 6N for full
/// fine-tuning, 4N + 6·N_lora with adapters, plus PaLM's attention term.
pub fn flops_per_token(c: &LlamaConfig, full: bool, seq_len: usize) -> f64 {
    let (n, n_lora) = matmul_and_lora_params(c);
    let attn = 12 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * seq_len;
    let dense = if full { 6 * n } else { 4 * n + 6 * n_lora };
    (dense + attn as u64) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_counts_match_the_published_model() {
        let c = Shape::Smollm2_135m.config();
        let (n, n_lora) = matmul_and_lora_params(&c);
        // 30 layers × 3,538,944 projection weights + the 49152 × 576 head.
        assert_eq!(n, 30 * 3_538_944 + 49_152 * 576);
        // r = 16 over q, k, v, o, gate, up, down: 16 · (in + out) summed = 162,816 per layer.
        assert_eq!(n_lora, 30 * 162_816);
        let expected = (6 * n + 12 * 30 * 576 * 512) as f64;
        assert_eq!(flops_per_token(&c, true, 512), expected);
    }

    #[test]
    fn every_shape_passes_the_model_checks() {
        for shape in Shape::value_variants() {
            shape.config().check().unwrap();
            let parsed = Shape::from_str(shape.name(), false).unwrap();
            assert_eq!(parsed, *shape);
        }
    }
}
