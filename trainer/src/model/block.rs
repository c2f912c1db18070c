//! One decoder block — RMSNorm → GQA attention with RoPE → residual → RMSNorm → SwiGLU MLP →
//! residual — with a hand-written backward over explicitly saved activations.

use candle_core::Tensor;
use ferrotune_config::TargetModule;

use super::grads::GradSink;
use anyhow::{Context, bail};

use super::linear::{Linear, LinearSaved, Weight};
use super::params::ParamId;
use super::pass::{Pass, Site};
use crate::kernels::{
    attention, attention_backward, rms_norm, rms_norm_backward, rope, rope_backward, swiglu,
    swiglu_backward,
};

/// Shape of the attention heads.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    /// Query heads.
    pub q: usize,
    /// Key/value heads.
    pub kv: usize,
    /// Width of one head.
    pub dim: usize,
}

/// A decoder block's weights.
#[derive(Debug, Clone)]
pub struct Block {
    /// Index of this block.
    pub layer: usize,
    /// Attention heads.
    pub heads: Heads,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// Pre-attention RMSNorm weight.
    pub attn_norm: Tensor,
    /// Pre-MLP RMSNorm weight.
    pub mlp_norm: Tensor,
    /// Whether the norm weights receive gradients (full fine-tuning).
    pub train_norms: bool,
    /// q, k, v, o, gate, up, down projections, in [`TargetModule::ALL`] order.
    pub proj: [Linear; 7],
}

/// Activations a block's backward needs.
#[derive(Debug)]
pub struct BlockSaved {
    x: Tensor,
    rstd1: Tensor,
    h1: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn: Tensor,
    lse: Tensor,
    x2: Tensor,
    rstd2: Tensor,
    h2: Tensor,
    gate: Tensor,
    up: Tensor,
    act: Tensor,
    linears: [Option<LinearSaved>; 7],
}

/// Keys and values produced by a block for the KV cache, (batch, seq, kv heads, head dim).
#[derive(Debug)]
pub struct KeyValues {
    /// Keys after RoPE.
    pub k: Tensor,
    /// Values.
    pub v: Tensor,
}

impl Block {
    /// The projection for `m`.
    pub fn proj(&self, m: TargetModule) -> &Linear {
        &self.proj[m as usize]
    }

    /// The tensor that holds `id` (a parameter of this block with a dense weight).
    pub fn slot(&mut self, id: ParamId) -> anyhow::Result<&mut Tensor> {
        fn lora(linear: &mut Linear, id: ParamId) -> anyhow::Result<&mut super::linear::Lora> {
            linear
                .lora
                .as_mut()
                .with_context(|| format!("{id}: no adapter on this projection"))
        }
        Ok(match id {
            ParamId::AttnNorm(_) => &mut self.attn_norm,
            ParamId::MlpNorm(_) => &mut self.mlp_norm,
            ParamId::Proj(_, m) => match &mut self.proj[m as usize].weight {
                Weight::Dense(w) => w,
                Weight::Nf4 { .. } => bail!("{id} is quantised and frozen"),
            },
            ParamId::LoraA(_, m) => &mut lora(&mut self.proj[m as usize], id)?.a,
            ParamId::LoraB(_, m) => &mut lora(&mut self.proj[m as usize], id)?.b,
            _ => bail!("{id} is not a parameter of block {}", self.layer),
        })
    }

    fn site(&self, module: TargetModule) -> Site {
        Site {
            layer: self.layer,
            module,
        }
    }

    fn linear(
        &self,
        m: TargetModule,
        x: &Tensor,
        pass: &Pass,
        saved: &mut [Option<LinearSaved>; 7],
    ) -> anyhow::Result<Tensor> {
        let (y, s) = self.proj(m).forward(x, self.site(m), pass)?;
        saved[m as usize] = Some(s);
        Ok(y)
    }

    /// Training forward: `x` (rows, hidden) → output and the activations its backward needs.
    pub fn forward(&self, x: &Tensor, pass: &Pass) -> anyhow::Result<(Tensor, BlockSaved)> {
        use TargetModule::*;
        let (b, t, hd) = (pass.batch, pass.seq, self.heads.dim);
        let mut linears: [Option<LinearSaved>; 7] = Default::default();
        let (h1, rstd1) = rms_norm(x, &self.attn_norm, self.eps)?;
        let q = self.linear(QProj, &h1, pass, &mut linears)?;
        let k = self.linear(KProj, &h1, pass, &mut linears)?;
        let v = self.linear(VProj, &h1, pass, &mut linears)?;
        let q = rope(
            &q.reshape((b * t, self.heads.q, hd))?,
            pass.rope,
            &pass.positions,
        )?
        .reshape((b, t, self.heads.q, hd))?;
        let k = rope(
            &k.reshape((b * t, self.heads.kv, hd))?,
            pass.rope,
            &pass.positions,
        )?
        .reshape((b, t, self.heads.kv, hd))?;
        let v = v.reshape((b, t, self.heads.kv, hd))?;
        let out = attention(&q, &k, &v, pass.key_mask.as_deref(), self.scale())?;
        let attn = out.out.reshape((b * t, self.heads.q * hd))?;
        let o = self.linear(OProj, &attn, pass, &mut linears)?;
        let x2 = (x + o)?;
        let (h2, rstd2) = rms_norm(&x2, &self.mlp_norm, self.eps)?;
        let gate = self.linear(GateProj, &h2, pass, &mut linears)?;
        let up = self.linear(UpProj, &h2, pass, &mut linears)?;
        let act = swiglu(&gate, &up)?;
        let down = self.linear(DownProj, &act, pass, &mut linears)?;
        let y = (&x2 + down)?;
        let saved = BlockSaved {
            x: x.clone(),
            rstd1,
            h1,
            q,
            k,
            v,
            attn,
            lse: out.lse,
            x2,
            rstd2,
            h2,
            gate,
            up,
            act,
            linears,
        };
        Ok((y, saved))
    }

    /// Backward of [`Block::forward`]: gradient of the input for `dy`; parameter gradients go to
    /// `sink`.
    pub fn backward(
        &self,
        saved: BlockSaved,
        dy: &Tensor,
        pass: &Pass,
        sink: &mut dyn GradSink,
    ) -> anyhow::Result<Tensor> {
        use TargetModule::*;
        let BlockSaved {
            x,
            rstd1,
            h1,
            q,
            k,
            v,
            attn,
            lse,
            x2,
            rstd2,
            h2,
            gate,
            up,
            act,
            linears,
        } = saved;
        let [sq, sk, sv, so, sg, su, sd] =
            linears.map(|s| s.expect("forward saved every projection"));
        let (b, t, hd) = (pass.batch, pass.seq, self.heads.dim);

        let dact =
            self.proj(DownProj)
                .backward(&act, sd, dy, None, self.site(DownProj), pass, sink)?;
        let (dgate, dup) = swiglu_backward(&gate, &up, &dact)?;
        let dh2 =
            self.proj(GateProj)
                .backward(&h2, sg, &dgate, None, self.site(GateProj), pass, sink)?;
        let dh2 =
            self.proj(UpProj)
                .backward(&h2, su, &dup, Some(dh2), self.site(UpProj), pass, sink)?;
        let (dx2_norm, dw2) =
            rms_norm_backward(&x2, &self.mlp_norm, &rstd2, &dh2, self.train_norms)?;
        let dx2 = (dy + dx2_norm)?;

        let dattn =
            self.proj(OProj)
                .backward(&attn, so, &dx2, None, self.site(OProj), pass, sink)?;
        let out = attn.reshape((b, t, self.heads.q, hd))?;
        let dout = dattn.reshape((b, t, self.heads.q, hd))?;
        let (dq, dk, dv) = attention_backward(
            &q,
            &k,
            &v,
            &out,
            &lse,
            &dout,
            pass.key_mask.as_deref(),
            self.scale(),
        )?;
        let dq = rope_backward(
            &dq.reshape((b * t, self.heads.q, hd))?,
            pass.rope,
            &pass.positions,
        )?
        .reshape((b * t, self.heads.q * hd))?;
        let dk = rope_backward(
            &dk.reshape((b * t, self.heads.kv, hd))?,
            pass.rope,
            &pass.positions,
        )?
        .reshape((b * t, self.heads.kv * hd))?;
        let dv = dv.reshape((b * t, self.heads.kv * hd))?;
        let dh1 = self
            .proj(QProj)
            .backward(&h1, sq, &dq, None, self.site(QProj), pass, sink)?;
        let dh1 =
            self.proj(KProj)
                .backward(&h1, sk, &dk, Some(dh1), self.site(KProj), pass, sink)?;
        let dh1 =
            self.proj(VProj)
                .backward(&h1, sv, &dv, Some(dh1), self.site(VProj), pass, sink)?;
        let (dx_norm, dw1) =
            rms_norm_backward(&x, &self.attn_norm, &rstd1, &dh1, self.train_norms)?;
        if let (Some(dw1), Some(dw2)) = (dw1, dw2) {
            sink.add(ParamId::AttnNorm(self.layer), dw1)?;
            sink.add(ParamId::MlpNorm(self.layer), dw2)?;
        }
        Ok((dx2 + dx_norm)?)
    }

    /// Inference forward for `x` (rows, hidden) whose keys attend `past` keys/values first.
    /// Returns the output and this block's keys/values including `past`.
    pub fn forward_cached(
        &self,
        x: &Tensor,
        pass: &Pass,
        past: Option<&KeyValues>,
    ) -> anyhow::Result<(Tensor, KeyValues)> {
        use TargetModule::*;
        let (b, t, hd) = (pass.batch, pass.seq, self.heads.dim);
        let proj = |m: TargetModule, x: &Tensor| -> anyhow::Result<Tensor> {
            Ok(self.proj(m).forward(x, self.site(m), pass)?.0)
        };
        let (h1, _) = rms_norm(x, &self.attn_norm, self.eps)?;
        let q = rope(
            &proj(QProj, &h1)?.reshape((b * t, self.heads.q, hd))?,
            pass.rope,
            &pass.positions,
        )?
        .reshape((b, t, self.heads.q, hd))?;
        let k = rope(
            &proj(KProj, &h1)?.reshape((b * t, self.heads.kv, hd))?,
            pass.rope,
            &pass.positions,
        )?
        .reshape((b, t, self.heads.kv, hd))?;
        let v = proj(VProj, &h1)?.reshape((b, t, self.heads.kv, hd))?;
        let kv = match past {
            Some(p) => KeyValues {
                k: Tensor::cat(&[&p.k, &k], 1)?,
                v: Tensor::cat(&[&p.v, &v], 1)?,
            },
            None => KeyValues { k, v },
        };
        let out = attention(&q, &kv.k, &kv.v, pass.key_mask.as_deref(), self.scale())?;
        let x2 = (x + proj(OProj, &out.out.reshape((b * t, self.heads.q * hd))?)?)?;
        let (h2, _) = rms_norm(&x2, &self.mlp_norm, self.eps)?;
        let act = swiglu(&proj(GateProj, &h2)?, &proj(UpProj, &h2)?)?;
        Ok(((&x2 + proj(DownProj, &act)?)?, kv))
    }

    fn scale(&self) -> f32 {
        1.0 / (self.heads.dim as f32).sqrt()
    }
}
