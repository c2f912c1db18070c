//! The Llama decoder: embedding, blocks, final norm and (tied or untied) output projection. It
//! trains with an explicit forward/backward over one micro-batch, and generates with a KV cache.

use std::borrow::Cow;
use std::collections::HashMap;

use anyhow::{Context, ensure};
use candle_core::{DType, Device, Tensor};
use ferrotune_config::{Mode, TargetModule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::block::{Block, BlockSaved, Heads, KeyValues};
use super::config::LlamaConfig;
use super::grads::GradSink;
use super::linear::{Linear, Lora, Weight};
use super::params::ParamId;
use super::pass::Pass;
use crate::kernels::{
    HeadGrad, RopeTable, embedding, embedding_backward, linear, lm_head_loss, rms_norm,
    rms_norm_backward,
};

/// LoRA adapter settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    /// Rank.
    pub r: usize,
    /// Scaling numerator (scale = alpha / r).
    pub alpha: f64,
    /// Dropout on the adapter's input.
    pub dropout: f32,
    /// Projections that get adapters.
    pub targets: Vec<TargetModule>,
}

/// How the pretrained model is adapted: what is trainable and how the base is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Adaptation {
    /// What is trained.
    pub mode: Mode,
    /// Adapter settings (lora and qlora).
    pub lora: Option<LoraSpec>,
}

impl Adaptation {
    /// The adaptation a config asks for.
    pub fn from_config(c: &ferrotune_config::Config) -> Self {
        let lora = (c.training.mode != Mode::Full).then(|| LoraSpec {
            r: c.lora.r,
            alpha: c.lora.alpha,
            dropout: c.lora.dropout as f32,
            targets: c.lora_targets(),
        });
        Self {
            mode: c.training.mode,
            lora,
        }
    }
}

/// A Llama-architecture causal language model.
#[derive(Debug)]
pub struct Llama {
    /// Hyper-parameters.
    pub config: LlamaConfig,
    /// Token embedding, (vocab, hidden).
    pub embed: Tensor,
    /// Output projection when untied, (vocab, hidden).
    pub lm_head: Option<Tensor>,
    /// Final RMSNorm weight.
    pub final_norm: Tensor,
    /// Decoder blocks.
    pub blocks: Vec<Block>,
    /// RoPE cos/sin tables.
    pub rope: RopeTable,
    /// Whether embedding, norms and head receive gradients (full fine-tuning).
    pub train_all: bool,
    /// Precision of the weights and activations ([`Llama::cast`]).
    dtype: DType,
}

/// Loss of one micro-batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MicroLoss {
    /// Sum over target tokens of −log p(target).
    pub loss_sum: f64,
    /// Target tokens in the micro-batch.
    pub n_targets: usize,
}

/// The embedding, final norm and (untied) head, borrowed from the model or gathered.
#[derive(Debug)]
pub struct Outer<'a> {
    /// Token embedding.
    pub embed: Cow<'a, Tensor>,
    /// Final RMSNorm weight.
    pub final_norm: Cow<'a, Tensor>,
    /// Untied output projection.
    pub lm_head: Option<Cow<'a, Tensor>>,
}

impl Outer<'_> {
    /// The output projection: the head, or the embedding when tied.
    pub fn head(&self) -> &Tensor {
        self.lm_head.as_deref().unwrap_or(&self.embed)
    }
}

/// Where a training pass gets its weights: the model itself, or ZeRO-3's shards gathered
/// just before use (and dropped after).
pub trait Weights {
    /// The outer weights.
    fn outer(&self) -> anyhow::Result<Outer<'_>>;
    /// Block `i`.
    fn block(&self, i: usize) -> anyhow::Result<Cow<'_, Block>>;
}

impl Weights for Llama {
    fn outer(&self) -> anyhow::Result<Outer<'_>> {
        Ok(Outer {
            embed: Cow::Borrowed(&self.embed),
            final_norm: Cow::Borrowed(&self.final_norm),
            lm_head: self.lm_head.as_ref().map(Cow::Borrowed),
        })
    }

    fn block(&self, i: usize) -> anyhow::Result<Cow<'_, Block>> {
        Ok(Cow::Borrowed(&self.blocks[i]))
    }
}

enum Kept {
    Saved(Box<BlockSaved>),
    Input(Tensor),
}

impl Llama {
    /// Builds the model from Hugging Face–named tensors, quantising the base for QLoRA and
    /// attaching freshly initialised adapters (PEFT's init: A Kaiming-uniform, B zero) seeded by
    /// `seed`.
    pub fn new(
        config: LlamaConfig,
        mut tensors: HashMap<String, Tensor>,
        adaptation: &Adaptation,
        seed: u64,
    ) -> anyhow::Result<Self> {
        config.check()?;
        let mut take = |id: ParamId| {
            tensors
                .remove(&id.hf_name())
                .with_context(|| format!("missing tensor {id}"))
        };
        let full = adaptation.mode == Mode::Full;
        let embed = take(ParamId::Embed)?;
        let device = embed.device().clone();
        let dtype = embed.dtype();
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(take(ParamId::LmHead)?)
        };
        let final_norm = take(ParamId::FinalNorm)?;
        let heads = Heads {
            q: config.num_attention_heads,
            kv: config.num_key_value_heads,
            dim: config.head_dim,
        };
        let mut blocks = Vec::with_capacity(config.num_hidden_layers);
        for layer in 0..config.num_hidden_layers {
            let mut proj = Vec::with_capacity(TargetModule::ALL.len());
            for m in TargetModule::ALL {
                let w = take(ParamId::Proj(layer, m))?;
                let weight = match adaptation.mode {
                    Mode::Qlora => Weight::quantize_nf4(&w)?,
                    Mode::Lora | Mode::Full => Weight::Dense(w),
                };
                proj.push(Linear::new(weight, full));
            }
            let proj: [Linear; 7] = proj.try_into().expect("one projection per target module");
            blocks.push(Block {
                layer,
                heads,
                eps: config.rms_norm_eps as f32,
                attn_norm: take(ParamId::AttnNorm(layer))?,
                mlp_norm: take(ParamId::MlpNorm(layer))?,
                train_norms: full,
                proj,
            });
        }
        let max_pos = config.max_position_embeddings.min(1 << 16);
        let rope = RopeTable::new(&config.rope_inv_freq(), max_pos, &device)?;
        let mut model = Self {
            config,
            embed,
            lm_head,
            final_norm,
            blocks,
            rope,
            train_all: full,
            dtype,
        };
        if let Some(spec) = &adaptation.lora {
            model.attach_lora(spec, seed)?;
        }
        Ok(model)
    }

    /// Adds adapters to the targeted projections of every block, initialised as PEFT does.
    pub fn attach_lora(&mut self, spec: &LoraSpec, seed: u64) -> anyhow::Result<()> {
        ensure!(spec.r >= 1, "LoRA rank must be at least 1");
        for block in &mut self.blocks {
            for &m in &spec.targets {
                let linear = &mut block.proj[m as usize];
                let (out, inp) = linear.weight.shape()?;
                let device = self.embed.device();
                let mut rng = ChaCha8Rng::seed_from_u64(
                    seed ^ ((block.layer as u64) << 16 | m as u64)
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let bound = 1.0 / (inp as f32).sqrt();
                let a: Vec<f32> = (0..spec.r * inp)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                linear.lora = Some(Lora {
                    a: Tensor::from_vec(a, (spec.r, inp), device)?,
                    b: Tensor::zeros((out, spec.r), candle_core::DType::F32, device)?,
                    scale: spec.alpha / spec.r as f64,
                    dropout: spec.dropout,
                });
            }
        }
        Ok(())
    }

    /// Converts every weight to `dtype` (bf16 on the GPU) for the passes. NF4 bases keep their
    /// quantised bytes and dequantise into `dtype`. The trainable parameters' f32 master copies
    /// live in the optimizer's state, not here.
    pub fn cast(&mut self, dtype: DType) -> anyhow::Result<()> {
        self.dtype = dtype;
        let cast = |t: &mut Tensor| -> anyhow::Result<()> {
            *t = t.to_dtype(dtype)?;
            Ok(())
        };
        cast(&mut self.embed)?;
        cast(&mut self.final_norm)?;
        if let Some(head) = &mut self.lm_head {
            cast(head)?;
        }
        for b in &mut self.blocks {
            cast(&mut b.attn_norm)?;
            cast(&mut b.mlp_norm)?;
            for p in &mut b.proj {
                p.weight.cast(dtype)?;
                if let Some(l) = &mut p.lora {
                    cast(&mut l.a)?;
                    cast(&mut l.b)?;
                }
            }
        }
        Ok(())
    }

    /// Precision of the weights and activations.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// `t` on the model's device and in its dtype: how a value computed elsewhere (the optimizer,
    /// a checkpoint, a gather) enters the model.
    pub fn place(&self, t: &Tensor) -> anyhow::Result<Tensor> {
        Ok(t.to_device(self.device())?.to_dtype(self.dtype)?)
    }

    /// The parameters that receive gradients, in a fixed order.
    pub fn trainable(&self) -> Vec<ParamId> {
        let mut ids = Vec::new();
        if self.train_all {
            ids.push(ParamId::Embed);
        }
        for b in &self.blocks {
            if b.train_norms {
                ids.push(ParamId::AttnNorm(b.layer));
            }
            for m in TargetModule::ALL {
                let p = b.proj(m);
                if p.train_base {
                    ids.push(ParamId::Proj(b.layer, m));
                }
                if p.lora.is_some() {
                    ids.extend([ParamId::LoraA(b.layer, m), ParamId::LoraB(b.layer, m)]);
                }
            }
            if b.train_norms {
                ids.push(ParamId::MlpNorm(b.layer));
            }
        }
        if self.train_all {
            ids.push(ParamId::FinalNorm);
            if self.lm_head.is_some() {
                ids.push(ParamId::LmHead);
            }
        }
        ids
    }

    /// A parameter's current value (NF4 bases dequantised).
    pub fn param(&self, id: ParamId) -> anyhow::Result<Tensor> {
        let block = |i: usize| {
            self.blocks
                .get(i)
                .with_context(|| format!("{id}: no block {i}"))
        };
        let lora = |i: usize, m: TargetModule| {
            block(i)?
                .proj(m)
                .lora
                .as_ref()
                .with_context(|| format!("{id}: no adapter on this projection"))
        };
        Ok(match id {
            ParamId::Embed => self.embed.clone(),
            ParamId::FinalNorm => self.final_norm.clone(),
            ParamId::LmHead => self
                .lm_head
                .clone()
                .context("lm_head is tied to the embedding")?,
            ParamId::AttnNorm(i) => block(i)?.attn_norm.clone(),
            ParamId::MlpNorm(i) => block(i)?.mlp_norm.clone(),
            ParamId::Proj(i, m) => block(i)?.proj(m).weight.dense()?,
            ParamId::LoraA(i, m) => lora(i, m)?.a.clone(),
            ParamId::LoraB(i, m) => lora(i, m)?.b.clone(),
        })
    }

    /// Replaces a trainable parameter's value (same shape).
    pub fn set_param(&mut self, id: ParamId, value: Tensor) -> anyhow::Result<()> {
        let old = self.param(id)?;
        ensure!(
            old.dims() == value.dims(),
            "{id}: shape {:?} does not match the model's {:?}",
            value.dims(),
            old.dims()
        );
        let value = self.place(&value)?;
        *self.slot(id)? = value;
        Ok(())
    }

    /// The tensor that holds `id` (dense weights only).
    pub fn slot(&mut self, id: ParamId) -> anyhow::Result<&mut Tensor> {
        Ok(match id {
            ParamId::Embed => &mut self.embed,
            ParamId::FinalNorm => &mut self.final_norm,
            ParamId::LmHead => self.lm_head.as_mut().context("lm_head is tied")?,
            ParamId::AttnNorm(i)
            | ParamId::MlpNorm(i)
            | ParamId::Proj(i, _)
            | ParamId::LoraA(i, _)
            | ParamId::LoraB(i, _) => self
                .blocks
                .get_mut(i)
                .with_context(|| format!("{id}: no block {i}"))?
                .slot(id)?,
        })
    }

    /// The tensors of unit `unit` in a fixed order: unit 0 is the embedding, final norm and
    /// head, unit 1 + i is block i. ZeRO-3 shards and gathers the model unit by unit.
    pub fn unit_params(&self, unit: usize) -> Vec<ParamId> {
        if unit == 0 {
            let mut ids = vec![ParamId::Embed, ParamId::FinalNorm];
            if self.lm_head.is_some() {
                ids.push(ParamId::LmHead);
            }
            return ids;
        }
        let b = &self.blocks[unit - 1];
        let mut ids = vec![ParamId::AttnNorm(b.layer), ParamId::MlpNorm(b.layer)];
        for m in TargetModule::ALL {
            ids.push(ParamId::Proj(b.layer, m));
            if b.proj(m).lora.is_some() {
                ids.extend([ParamId::LoraA(b.layer, m), ParamId::LoraB(b.layer, m)]);
            }
        }
        ids
    }

    /// Units of [`Llama::unit_params`]: the outer weights and one per block.
    pub fn units(&self) -> usize {
        1 + self.blocks.len()
    }

    /// Bytes of the weights this model holds now (none of them under ZeRO-3's sharding).
    pub fn resident_bytes(&self) -> usize {
        let dense = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let mut n =
            dense(&self.embed) + dense(&self.final_norm) + self.lm_head.as_ref().map_or(0, dense);
        for b in &self.blocks {
            n += dense(&b.attn_norm) + dense(&b.mlp_norm);
            for p in &b.proj {
                n += p.weight.storage_bytes();
                n += p.lora.as_ref().map_or(0, |l| dense(&l.a) + dense(&l.b));
            }
        }
        n
    }

    /// The device holding the weights.
    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    /// Forward and backward of one micro-batch. `targets[row]` is the token row `row` predicts
    /// (−1: none). Gradients of `grad_scale · loss_sum` go to `sink`.
    pub fn forward_backward(
        &self,
        ids: &[u32],
        targets: &[i32],
        pass: &Pass,
        grad_scale: f32,
        checkpointing: bool,
        sink: &mut dyn GradSink,
    ) -> anyhow::Result<MicroLoss> {
        self.forward_backward_with(self, ids, targets, pass, grad_scale, checkpointing, sink)
    }

    /// [`Llama::forward_backward`] with the weights taken from `weights` as each part of the
    /// pass needs them (ZeRO-3 gathers them from the ranks; `self` may then hold none). Every
    /// call asks `weights` for the outer weights, blocks 0..n, the outer weights again and
    /// blocks n..0, in that order.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_backward_with(
        &self,
        weights: &dyn Weights,
        ids: &[u32],
        targets: &[i32],
        pass: &Pass,
        grad_scale: f32,
        checkpointing: bool,
        sink: &mut dyn GradSink,
    ) -> anyhow::Result<MicroLoss> {
        ensure!(
            ids.len() == pass.rows() && targets.len() == pass.rows(),
            "batch shape mismatch"
        );
        let mut x = embedding(ids, &weights.outer()?.embed)?;
        let mut kept = Vec::with_capacity(self.blocks.len());
        for i in 0..self.blocks.len() {
            let block = weights.block(i)?;
            let (y, saved) = block.forward(&x, pass)?;
            kept.push(if checkpointing {
                Kept::Input(x)
            } else {
                Kept::Saved(Box::new(saved))
            });
            x = y;
        }
        let outer = weights.outer()?;
        let (h, rstd) = rms_norm(&x, &outer.final_norm, self.config.rms_norm_eps as f32)?;
        let head = if outer.lm_head.is_some() {
            ParamId::LmHead
        } else {
            ParamId::Embed
        };
        // A trained head's gradient goes straight into the sink's GPU buffer where it has one.
        let slot = if self.train_all {
            sink.in_place(head, outer.head().elem_count())?
        } else {
            None
        };
        let head_grad = match &slot {
            Some((flat, offset)) => HeadGrad::Into(flat, *offset),
            None if self.train_all => HeadGrad::Return,
            None => HeadGrad::Skip,
        };
        let loss = lm_head_loss(&h, outer.head(), targets, grad_scale, head_grad)?;
        let (mut dx, dnorm) =
            rms_norm_backward(&x, &outer.final_norm, &rstd, &loss.dh, self.train_all)?;
        if let Some(dnorm) = dnorm {
            sink.add(ParamId::FinalNorm, dnorm)?;
        }
        if let Some(dhead) = loss.dw {
            sink.add(head, dhead)?;
        }
        drop(outer);
        for (i, k) in kept.into_iter().enumerate().rev() {
            let block = weights.block(i)?;
            let saved = match k {
                Kept::Saved(s) => *s,
                Kept::Input(x) => block.forward(&x, pass)?.1,
            };
            dx = block.backward(saved, &dx, pass, sink)?;
        }
        if self.train_all {
            sink.add(
                ParamId::Embed,
                embedding_backward(ids, &dx, self.config.vocab_size)?,
            )?;
        }
        Ok(MicroLoss {
            loss_sum: loss.loss_sum,
            n_targets: loss.n_targets,
        })
    }

    /// Runs `ids` (batch · seq rows) through the blocks after the cached keys/values and appends
    /// this step's keys/values to `cache`; returns the final hidden states (rows, hidden), before
    /// the final norm.
    fn hidden_cached(
        &self,
        ids: &[u32],
        pass: &Pass,
        cache: &mut Vec<KeyValues>,
    ) -> anyhow::Result<Tensor> {
        let mut x = embedding(ids, &self.embed)?;
        let fresh = cache.is_empty();
        for (i, block) in self.blocks.iter().enumerate() {
            let (y, kv) =
                block.forward_cached(&x, pass, if fresh { None } else { Some(&cache[i]) })?;
            if fresh {
                cache.push(kv);
            } else {
                cache[i] = kv;
            }
            x = y;
        }
        Ok(x)
    }

    fn logits_of(&self, hidden: &Tensor) -> anyhow::Result<Tensor> {
        let (h, _) = rms_norm(
            &hidden.contiguous()?,
            &self.final_norm,
            self.config.rms_norm_eps as f32,
        )?;
        Ok(linear(&h, self.lm_head.as_ref().unwrap_or(&self.embed))?)
    }

    /// Like [`Llama::logits`] after cached keys/values (which it extends), returning only each
    /// sequence's last-row logits, (batch, vocab): one decoding step.
    pub fn forward_cached(
        &self,
        ids: &[u32],
        pass: &Pass,
        cache: &mut Vec<KeyValues>,
    ) -> anyhow::Result<Tensor> {
        let x = self.hidden_cached(ids, pass, cache)?;
        let last = x
            .reshape((pass.batch, pass.seq, self.config.hidden_size))?
            .narrow(1, pass.seq - 1, 1)?
            .squeeze(1)?;
        self.logits_of(&last)
    }

    /// Logits of every row of `ids` (batch · seq rows), (rows, vocab).
    pub fn logits(&self, ids: &[u32], pass: &Pass) -> anyhow::Result<Tensor> {
        let x = self.hidden_cached(ids, pass, &mut Vec::new())?;
        self.logits_of(&x)
    }

    /// Every weight under its Hugging Face name, adapters folded into their base weights.
    pub fn merged_tensors(&self) -> anyhow::Result<Vec<(String, Tensor)>> {
        let mut out = vec![(ParamId::Embed.hf_name(), self.embed.clone())];
        for b in &self.blocks {
            out.push((ParamId::AttnNorm(b.layer).hf_name(), b.attn_norm.clone()));
            out.push((ParamId::MlpNorm(b.layer).hf_name(), b.mlp_norm.clone()));
            for m in TargetModule::ALL {
                out.push((
                    ParamId::Proj(b.layer, m).hf_name(),
                    b.proj(m).merged_weight()?,
                ));
            }
        }
        out.push((ParamId::FinalNorm.hf_name(), self.final_norm.clone()));
        if let Some(head) = &self.lm_head {
            out.push((ParamId::LmHead.hf_name(), head.clone()));
        }
        Ok(out)
    }

    /// The adapter tensors under PEFT's names.
    pub fn adapter_tensors(&self) -> anyhow::Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for id in self.trainable() {
            if let Some(name) = id.peft_name() {
                out.push((name, self.param(id)?));
            }
        }
        Ok(out)
    }
}
