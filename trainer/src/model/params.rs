//! Names of the model's parameters: which tensor a gradient belongs to, and its Hugging Face and
//! PEFT names on disk.

use std::fmt;

use ferrotune_config::TargetModule;

/// One parameter tensor of a Llama model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ParamId {
    /// Token embedding, (vocab, hidden).
    Embed,
    /// Final RMSNorm weight.
    FinalNorm,
    /// Output projection, (vocab, hidden); absent when tied to the embedding.
    LmHead,
    /// RMSNorm before attention in block `i`.
    AttnNorm(usize),
    /// RMSNorm before the MLP in block `i`.
    MlpNorm(usize),
    /// A projection's base weight, (out, in).
    Proj(usize, TargetModule),
    /// LoRA down-projection A, (r, in).
    LoraA(usize, TargetModule),
    /// LoRA up-projection B, (out, r).
    LoraB(usize, TargetModule),
}

impl ParamId {
    /// The tensor's name in a Hugging Face checkpoint (for adapters: inside the base model).
    pub fn hf_name(self) -> String {
        match self {
            Self::Embed => "model.embed_tokens.weight".into(),
            Self::FinalNorm => "model.norm.weight".into(),
            Self::LmHead => "lm_head.weight".into(),
            Self::AttnNorm(i) => format!("model.layers.{i}.input_layernorm.weight"),
            Self::MlpNorm(i) => format!("model.layers.{i}.post_attention_layernorm.weight"),
            Self::Proj(i, m) => format!("{}.weight", module_path(i, m)),
            Self::LoraA(i, m) => format!("{}.lora_A.weight", module_path(i, m)),
            Self::LoraB(i, m) => format!("{}.lora_B.weight", module_path(i, m)),
        }
    }

    /// The tensor's name in a PEFT `adapter_model.safetensors` (LoRA tensors only).
    pub fn peft_name(self) -> Option<String> {
        match self {
            Self::LoraA(..) | Self::LoraB(..) => {
                Some(format!("base_model.model.{}", self.hf_name()))
            }
            _ => None,
        }
    }

    /// Parses a PEFT adapter tensor name back into its id.
    pub fn from_peft_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("base_model.model.model.layers.")?;
        let (layer, rest) = rest.split_once('.')?;
        let layer: usize = layer.parse().ok()?;
        let (parent, rest) = rest.split_once('.')?;
        let (module, kind) = rest.split_once('.')?;
        let target = TargetModule::ALL
            .into_iter()
            .find(|t| t.name() == module && t.parent() == parent)?;
        match kind {
            "lora_A.weight" => Some(Self::LoraA(layer, target)),
            "lora_B.weight" => Some(Self::LoraB(layer, target)),
            _ => None,
        }
    }

    /// Whether AdamW's weight decay applies (not to norm weights, as Hugging Face's Trainer).
    pub fn decays(self) -> bool {
        !matches!(self, Self::FinalNorm | Self::AttnNorm(_) | Self::MlpNorm(_))
    }
}

fn module_path(layer: usize, m: TargetModule) -> String {
    format!("model.layers.{layer}.{}.{}", m.parent(), m.name())
}

impl fmt::Display for ParamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hf_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_names_round_trip() {
        for id in [
            ParamId::LoraA(3, TargetModule::QProj),
            ParamId::LoraB(0, TargetModule::DownProj),
        ] {
            let name = id.peft_name().unwrap();
            assert_eq!(ParamId::from_peft_name(&name), Some(id));
        }
        assert_eq!(
            ParamId::LoraA(3, TargetModule::QProj).peft_name().unwrap(),
            "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"
        );
        assert_eq!(
            ParamId::Proj(1, TargetModule::UpProj).hf_name(),
            "model.layers.1.mlp.up_proj.weight"
        );
        assert_eq!(
            ParamId::from_peft_name("base_model.model.model.layers.0.mlp.q_proj.lora_A.weight"),
            None
        );
    }
}
