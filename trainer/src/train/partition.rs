//! Who holds what under each strategy, and the step's communication.
//!
//! The trainable master values and their AdamW state live in [`Unit`]s. Under DDP one unit holds
//! every trainable tensor whole on every rank, and gradients are all-reduced in buckets. Under
//! ZeRO-2 the same unit is sharded ([`ShardLayout`]): gradients are reduce-scattered, each rank
//! updates its shard, and the updated values are all-gathered into the model, which stays whole.
//! Under ZeRO-3 there is one unit per block plus one for the embedding, final norm and head,
//! each holding its frozen tensors' shards too; the model keeps no weights and [`Gathering`]
//! all-gathers a unit just before the pass uses it.
//!
//! Under DDP on a GPU the master values, gradients and moments stay on the device
//! ([`Partition::on_device`]): the step runs there and copies nothing to the host, except to
//! all-reduce across ranks and to write a checkpoint.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use anyhow::{Context, bail, ensure};
use candle_core::{DType, Device, Tensor};
use ferrotune_config::{Strategy, TargetModule};

use super::flat::Flat;
use super::grads::FlatGrads;
use super::optim::{AdamW, AdamWConfig, AdamWState, Segment};
use super::shard::ShardLayout;
use crate::dist::Collective;
use crate::model::block::Block;
use crate::model::linear::Weight;
use crate::model::llama::{Llama, Outer, Weights};
use crate::model::params::ParamId;

/// One rank's part of a group of tensors: trainable ones first, then frozen ones (ZeRO-3).
#[derive(Debug)]
struct Unit {
    ids: Vec<ParamId>,
    shapes: Vec<Vec<usize>>,
    /// How many of `ids` are trainable.
    trainable: usize,
    /// Layout of all the unit's tensors.
    layout: ShardLayout,
    /// Layout of the trainable ones alone: the same offsets, a shorter shard.
    train_layout: ShardLayout,
    /// This rank's chunks.
    shard: Flat,
    adam: AdamW,
    segments: Vec<Segment>,
    /// For a device unit, once [`Partition::apply`] has run: the flat buffer that the model's
    /// trained tensors are views of. For an f32 model it is the master buffer itself; for a bf16
    /// model, its rounding to bf16, which each AdamW step rewrites in the same pass.
    weights: Option<Tensor>,
}

impl Unit {
    /// The unit of `ids` (the first `trainable` of them trainable) for `rank` of `world`, its
    /// state in host memory, or with `on_device` (one whole, trainable unit) on the model's GPU.
    fn new(
        model: &Llama,
        ids: Vec<ParamId>,
        trainable: usize,
        (rank, world): (usize, usize),
        adam: AdamWConfig,
        on_device: bool,
    ) -> anyhow::Result<Self> {
        let shapes: Vec<Vec<usize>> = ids
            .iter()
            .map(|&id| Ok(model.param(id)?.dims().to_vec()))
            .collect::<anyhow::Result<_>>()?;
        let lens = || shapes.iter().map(|s| s.iter().product::<usize>());
        let layout = ShardLayout::new(lens(), rank, world);
        let train_layout = ShardLayout::new(lens().take(trainable), rank, world);
        let (shard, device) = if on_device {
            ensure!(
                world == 1 && trainable == ids.len(),
                "only a whole, trainable unit stays on the GPU"
            );
            let values = ids
                .iter()
                .map(|&id| Ok(model.param(id)?.to_dtype(DType::F32)?.flatten_all()?))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let all = if values.is_empty() {
                Tensor::zeros(0, DType::F32, model.device())?
            } else {
                Tensor::cat(&values, 0)?
            };
            (Flat::Device(all), model.device().clone())
        } else {
            let mut shard = vec![0.0; layout.shard_len()];
            for (i, &id) in ids.iter().enumerate() {
                layout.take(i, &flat(&model.param(id)?)?, &mut shard);
            }
            (Flat::Host(shard), Device::Cpu)
        };
        let segments = (0..trainable)
            .map(|i| Segment {
                offset: train_layout.offset(i),
                len: train_layout.chunk(i),
                decay: ids[i].decays(),
            })
            .collect();
        Ok(Self {
            adam: AdamW::new(adam, train_layout.shard_len()).on(&device)?,
            ids,
            shapes,
            trainable,
            layout,
            train_layout,
            shard,
            segments,
            weights: None,
        })
    }

    fn train_len(&self) -> usize {
        self.train_layout.shard_len()
    }

    /// The unit's tensors, whole, gathered from every rank, f32 in host memory (a host unit).
    fn gather(
        &self,
        comm: &mut dyn Collective,
        trainable_only: bool,
    ) -> anyhow::Result<Vec<Tensor>> {
        let layout = if trainable_only {
            &self.train_layout
        } else {
            &self.layout
        };
        let shard = match &self.shard {
            Flat::Host(shard) if trainable_only => &shard[..self.train_len()],
            Flat::Host(shard) => &shard[..],
            Flat::Device(_) => {
                bail!("a device unit is never gathered: the model holds views of it")
            }
        };
        let world = layout.world();
        let all = if world == 1 {
            shard.to_vec()
        } else {
            comm.all_gather(shard, shard.len() * world)?
        };
        layout
            .unpack(&all)
            .into_iter()
            .zip(&self.shapes)
            .map(|(v, shape)| {
                Ok(Tensor::from_vec(
                    v,
                    shape.as_slice(),
                    &candle_core::Device::Cpu,
                )?)
            })
            .collect()
    }
}

fn flat(t: &Tensor) -> anyhow::Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// A part of a trainable tensor owned by this rank, as a checkpoint stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The tensor's Hugging Face name.
    pub name: String,
    /// Its first element within the tensor.
    pub start: usize,
    /// Master values.
    pub values: Vec<f32>,
    /// AdamW first moments.
    pub exp_avg: Vec<f32>,
    /// AdamW second moments.
    pub exp_avg_sq: Vec<f32>,
}

/// A trainable tensor whole, with its optimizer moments, as a checkpoint restores it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Whole {
    /// Master values.
    pub values: Vec<f32>,
    /// AdamW first moments.
    pub exp_avg: Vec<f32>,
    /// AdamW second moments.
    pub exp_avg_sq: Vec<f32>,
}

/// The strategy's split of the trainable state on this rank.
#[derive(Debug)]
pub struct Partition {
    strategy: Strategy,
    rank: usize,
    units: Vec<Unit>,
    bucket: usize,
}

impl Partition {
    /// Whether the trainable state of `model` under `strategy` stays on its device: under DDP on
    /// a GPU. (ZeRO's shards are exchanged through host buffers, so they stay on the host.)
    pub fn on_device(strategy: Strategy, model: &Llama) -> bool {
        strategy == Strategy::Ddp && !model.device().is_cpu()
    }

    /// Splits `model`'s trainable parameters (whose gradients `grads` lays out) for `rank` of
    /// `world` under `strategy`. Under ZeRO-3 the model's weights are moved into the shards.
    pub fn new(
        model: &mut Llama,
        grads: &FlatGrads,
        strategy: Strategy,
        (rank, world): (usize, usize),
        adam: AdamWConfig,
        bucket_bytes: usize,
    ) -> anyhow::Result<Self> {
        let ids: Vec<ParamId> = grads.entries().iter().map(|e| e.id).collect();
        let units = match strategy {
            Strategy::Ddp => {
                let on_device = Self::on_device(strategy, model);
                vec![Unit::new(
                    model,
                    ids.clone(),
                    ids.len(),
                    (0, 1),
                    adam,
                    on_device,
                )?]
            }
            Strategy::Zero2 => vec![Unit::new(
                model,
                ids.clone(),
                ids.len(),
                (rank, world),
                adam,
                false,
            )?],
            Strategy::Zero3 => {
                let quantised = model.blocks.iter().any(|b| {
                    TargetModule::ALL
                        .iter()
                        .any(|&m| matches!(b.proj(m).weight, Weight::Nf4 { .. }))
                });
                ensure!(
                    !quantised,
                    "distributed.strategy zero3 does not shard an NF4 (qlora) base; use ddp or zero2 \
                     with qlora (its 4-bit base is small already)"
                );
                let mut units = Vec::with_capacity(model.units());
                for u in 0..model.units() {
                    let (mut all, frozen): (Vec<_>, Vec<_>) = model
                        .unit_params(u)
                        .into_iter()
                        .partition(|id| grads.entry(*id).is_some());
                    let trainable = all.len();
                    all.extend(frozen);
                    units.push(Unit::new(
                        model,
                        all,
                        trainable,
                        (rank, world),
                        adam,
                        false,
                    )?);
                }
                for id in units.iter().flat_map(|u| u.ids.clone()).collect::<Vec<_>>() {
                    *model.slot(id)? = Tensor::zeros(0, model.dtype(), model.device())?;
                }
                units
            }
        };
        Ok(Self {
            strategy,
            rank,
            units,
            bucket: (bucket_bytes / 4).max(1),
        })
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Sums the ranks' gradients: returns each unit's reduced gradient shard and the global
    /// gradient norm (the same on every rank).
    pub fn reduce(
        &self,
        grads: &mut FlatGrads,
        comm: &mut dyn Collective,
    ) -> anyhow::Result<(Vec<Flat>, f64)> {
        grads.settle()?;
        if self.strategy == Strategy::Ddp {
            if comm.world() > 1 {
                self.all_reduce(&mut grads.grads, comm)?;
            }
            let norm = grads.grads.sum_of_squares()?.sqrt();
            // A device buffer's clone shares its storage: nothing is copied.
            return Ok((vec![grads.grads.clone()], norm));
        }
        let mut shards = Vec::with_capacity(self.units.len());
        let mut squares = 0.0;
        for unit in &self.units {
            let packed = unit.train_layout.pack(|i| {
                grads
                    .of(unit.ids[i])
                    .expect("the unit's trainable tensors have gradients")
            });
            let shard = if unit.train_len() == 0 {
                Vec::new()
            } else {
                comm.reduce_scatter_sum(&packed)?
            };
            let shard = Flat::Host(shard);
            squares += shard.sum_of_squares()?;
            shards.push(shard);
        }
        let norm = comm.sum_f64(&[squares])?[0].sqrt();
        Ok((shards, norm))
    }

    /// Sums `grads` over the ranks in buckets (through host memory for a device buffer).
    fn all_reduce(&self, grads: &mut Flat, comm: &mut dyn Collective) -> anyhow::Result<()> {
        let device = grads.device();
        let mut host = grads.take_host()?;
        for bucket in host.chunks_mut(self.bucket) {
            comm.all_reduce_sum(bucket)?;
        }
        *grads = Flat::from_host(host, &device)?;
        Ok(())
    }

    /// One AdamW step of every unit's shard with its reduced gradients, scaled by `coefficient`
    /// (gradient clipping).
    pub fn step(&mut self, shards: Vec<Flat>, coefficient: f32, lr: f64) -> anyhow::Result<()> {
        for (unit, grads) in self.units.iter_mut().zip(&shards) {
            let n = unit.train_len();
            match (&mut unit.shard, grads) {
                (Flat::Host(shard), Flat::Host(grads)) => {
                    unit.adam.step_scaled(
                        &mut shard[..n],
                        grads,
                        &unit.segments,
                        lr,
                        coefficient,
                    )?;
                }
                (Flat::Device(shard), Flat::Device(grads)) => {
                    // An f32 model's views share the master buffer and need no second write.
                    let shadow = unit.weights.as_ref().filter(|w| w.dtype() == DType::BF16);
                    unit.adam.step_on_device(
                        shard,
                        shadow,
                        grads,
                        &unit.segments,
                        lr,
                        coefficient,
                    )?;
                }
                _ => bail!("a unit's master values and its gradients are in different places"),
            }
        }
        Ok(())
    }

    /// Puts the updated values into the model (all-gathered under ZeRO-2; under ZeRO-3 the
    /// model holds no weights, so nothing moves). A device unit does this once: the model's
    /// tensors become views of one weights buffer, which the AdamW steps keep current from then
    /// on.
    pub fn apply(&mut self, model: &mut Llama, comm: &mut dyn Collective) -> anyhow::Result<()> {
        if self.strategy == Strategy::Zero3 {
            return Ok(());
        }
        for unit in &mut self.units {
            let Flat::Device(master) = &unit.shard else {
                for (id, t) in unit.ids.iter().zip(unit.gather(comm, true)?) {
                    model.set_param(*id, t)?;
                }
                continue;
            };
            if unit.weights.is_some() {
                continue;
            }
            let weights = match model.dtype() {
                DType::F32 => master.clone(),
                DType::BF16 => master.to_dtype(DType::BF16)?,
                other => bail!("a model in {other:?} cannot train on the GPU; use bf16 or f32"),
            };
            for (i, id) in unit.ids.iter().enumerate() {
                let at = unit.train_layout.offset(i);
                let view = weights
                    .narrow(0, at, unit.train_layout.chunk(i))?
                    .reshape(unit.shapes[i].as_slice())?;
                model.set_param(*id, view)?;
            }
            unit.weights = Some(weights);
        }
        Ok(())
    }

    /// Makes the model whole again on every rank (ZeRO-3), for exporting and evaluating.
    pub fn unshard(&self, model: &mut Llama, comm: &mut dyn Collective) -> anyhow::Result<()> {
        if self.strategy != Strategy::Zero3 {
            return Ok(());
        }
        for unit in &self.units {
            for (id, t) in unit.ids.iter().zip(unit.gather(comm, false)?) {
                let t = model.place(&t)?;
                *model.slot(*id)? = t;
            }
        }
        Ok(())
    }

    /// Bytes of the master values, frozen shards and AdamW moments this rank holds.
    pub fn state_bytes(&self) -> usize {
        self.units
            .iter()
            .map(|u| 4 * (u.shard.len() + 2 * u.train_len()))
            .sum()
    }

    /// What this rank writes into a checkpoint: its part of every trainable tensor (all of them
    /// on rank 0 under DDP, nothing on the other DDP ranks), copied to host memory.
    pub fn pieces(&self) -> anyhow::Result<Vec<Piece>> {
        if self.strategy == Strategy::Ddp && self.rank != 0 {
            return Ok(Vec::new());
        }
        let mut pieces = Vec::new();
        for unit in &self.units {
            let state = unit.adam.state()?;
            let values = unit.shard.read()?;
            for i in 0..unit.trainable {
                let owned = unit.train_layout.owned(i);
                let at = unit.train_layout.offset(i);
                let here = at..at + owned.len();
                pieces.push(Piece {
                    name: unit.ids[i].hf_name(),
                    start: owned.start,
                    values: values[here.clone()].to_vec(),
                    exp_avg: state.exp_avg[here.clone()].to_vec(),
                    exp_avg_sq: state.exp_avg_sq[here].to_vec(),
                });
            }
        }
        Ok(pieces)
    }

    /// Names and element counts of the trainable tensors, as a checkpoint must hold them.
    pub fn trainable(&self) -> Vec<(String, usize)> {
        self.units
            .iter()
            .flat_map(|u| {
                (0..u.trainable).map(|i| (u.ids[i].hf_name(), u.shapes[i].iter().product()))
            })
            .collect()
    }

    /// Restores the master values and optimizer state from whole tensors by name (a checkpoint
    /// of any world size), then [`Partition::apply`]s them.
    pub fn restore(
        &mut self,
        whole: &HashMap<String, Whole>,
        step: u64,
        model: &mut Llama,
        comm: &mut dyn Collective,
    ) -> anyhow::Result<()> {
        for unit in &mut self.units {
            let n = unit.train_len();
            let device = unit.shard.device();
            // In place in host memory; a device shard comes back for the update and goes again.
            let mut values = unit.shard.take_host()?;
            let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
            for i in 0..unit.trainable {
                let name = unit.ids[i].hf_name();
                let w = whole
                    .get(&name)
                    .with_context(|| format!("the checkpoint has no {name}"))?;
                let len: usize = unit.shapes[i].iter().product();
                ensure!(
                    [&w.values, &w.exp_avg, &w.exp_avg_sq]
                        .iter()
                        .all(|b| b.len() == len),
                    "the checkpoint's {name} has {} values, this run's has {len}",
                    w.values.len()
                );
                unit.train_layout.take(i, &w.values, &mut values[..n]);
                unit.train_layout.take(i, &w.exp_avg, &mut m);
                unit.train_layout.take(i, &w.exp_avg_sq, &mut v);
            }
            unit.shard = Flat::from_host(values, &device)?;
            // The model's views (if any) show the old buffer: [`Partition::apply`] makes new ones.
            unit.weights = None;
            unit.adam = AdamW::from_state(
                *unit.adam.config(),
                0..n,
                AdamWState {
                    step,
                    exp_avg: m,
                    exp_avg_sq: v,
                },
            )?
            .on(&device)?;
        }
        self.apply(model, comm)
    }

    /// The weights a training pass reads: the model's own, or (ZeRO-3) gathered unit by unit.
    pub fn weights<'a>(&'a self, model: &'a Llama, comm: &'a mut dyn Collective) -> Gathering<'a> {
        Gathering {
            model,
            partition: self,
            comm: RefCell::new(comm),
        }
    }
}

/// [`Weights`] under a [`Partition`]: borrowed from the model, or all-gathered per unit just
/// before use and dropped after (ZeRO-3).
pub struct Gathering<'a> {
    model: &'a Llama,
    partition: &'a Partition,
    comm: RefCell<&'a mut dyn Collective>,
}

impl Gathering<'_> {
    fn sharded(&self) -> bool {
        self.partition.strategy == Strategy::Zero3
    }

    fn gather(&self, unit: usize) -> anyhow::Result<Vec<(ParamId, Tensor)>> {
        let unit = &self.partition.units[unit];
        let mut comm = self.comm.borrow_mut();
        unit.ids
            .iter()
            .zip(unit.gather(&mut **comm, false)?)
            .map(|(id, t)| Ok((*id, self.model.place(&t)?)))
            .collect()
    }

    /// Takes part in a micro-batch's gathers without computing: a ZeRO-3 rank with no samples
    /// left in the step must still serve the others' gathers.
    pub fn idle(&self) -> anyhow::Result<()> {
        if self.sharded() {
            let blocks = self.model.blocks.len();
            self.outer()?;
            (0..blocks).try_for_each(|i| self.block(i).map(drop))?;
            self.outer()?;
            (0..blocks)
                .rev()
                .try_for_each(|i| self.block(i).map(drop))?;
        }
        Ok(())
    }
}

impl Weights for Gathering<'_> {
    fn outer(&self) -> anyhow::Result<Outer<'_>> {
        if !self.sharded() {
            return self.model.outer();
        }
        let mut outer = Outer {
            embed: Cow::Owned(Tensor::zeros(0, self.model.dtype(), self.model.device())?),
            final_norm: Cow::Owned(Tensor::zeros(0, self.model.dtype(), self.model.device())?),
            lm_head: None,
        };
        for (id, t) in self.gather(0)? {
            match id {
                ParamId::Embed => outer.embed = Cow::Owned(t),
                ParamId::FinalNorm => outer.final_norm = Cow::Owned(t),
                ParamId::LmHead => outer.lm_head = Some(Cow::Owned(t)),
                _ => bail!("{id} is not an outer weight"),
            }
        }
        Ok(outer)
    }

    fn block(&self, i: usize) -> anyhow::Result<Cow<'_, Block>> {
        if !self.sharded() {
            return self.model.block(i);
        }
        let mut block = self.model.blocks[i].clone();
        for (id, t) in self.gather(1 + i)? {
            *block.slot(id)? = t;
        }
        Ok(Cow::Owned(block))
    }
}
