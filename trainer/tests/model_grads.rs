//! The model's hand-written backward against candle's tape autograd over a plain-ops Llama: loss
//! and every trainable gradient, for full fine-tuning, LoRA (with dropout) and QLoRA (NF4 base),
//! on the tiny fixture model with random tokens and targets.

mod common;

use std::collections::{BTreeMap, HashMap};

use candle_core::{D, DType, Device, Tensor, Var};
use ferrotune::model::llama::{Adaptation, Llama, LoraSpec};
use ferrotune::model::load::{ModelSource, load};
use ferrotune::model::params::ParamId;
use ferrotune::model::pass::{DropoutPlan, Pass, Site};
use ferrotune_config::{Mode, TargetModule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const B: usize = 2;
const T: usize = 9;

struct Case {
    model: Llama,
    ids: Vec<u32>,
    targets: Vec<i32>,
    positions: Vec<u32>,
}

fn case(mode: Mode, targets: &[TargetModule], dropout: f32) -> Case {
    case_on(mode, targets, dropout, &Device::Cpu)
}

/// The tiny model with adapters as `mode` asks, its weights on `device`, and a random batch.
fn case_on(mode: Mode, targets: &[TargetModule], dropout: f32, device: &Device) -> Case {
    let loaded = load(
        &ModelSource::HfDir(common::fixtures().join("tiny-llama")),
        device,
    )
    .unwrap();
    let lora = (mode != Mode::Full).then(|| LoraSpec {
        r: 4,
        alpha: 8.0,
        dropout,
        targets: targets.to_vec(),
    });
    let mut model =
        Llama::new(loaded.config, loaded.tensors, &Adaptation { mode, lora }, 7).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // B starts at zero (PEFT's init); give it values so gradients reach A.
    for id in model.trainable() {
        if let ParamId::LoraB(..) = id {
            let shape = model.param(id).unwrap().dims().to_vec();
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-0.2..0.2)).collect();
            model
                .set_param(id, Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    let vocab = model.config.vocab_size as u32;
    let ids: Vec<u32> = (0..B * T).map(|_| rng.random_range(0..vocab)).collect();
    let targets: Vec<i32> = (0..B * T)
        .map(|i| {
            if i % 3 == 0 {
                -1
            } else {
                rng.random_range(0..vocab) as i32
            }
        })
        .collect();
    let positions = (0..B).flat_map(|_| 0..T as u32).collect();
    Case {
        model,
        ids,
        targets,
        positions,
    }
}

fn pass<'a>(c: &'a Case, dropout: bool) -> Pass<'a> {
    Pass {
        batch: B,
        seq: T,
        positions: c.positions.clone(),
        rope: &c.model.rope,
        key_mask: None,
        dropout: dropout.then(|| DropoutPlan {
            seed: 5,
            sample_streams: vec![101, 202],
        }),
    }
}

/// The same model written with plain candle ops, trainable tensors as `Var`s.
fn reference_loss(c: &Case, p: &Pass, vars: &HashMap<ParamId, Var>, n_targets: f64) -> Tensor {
    let m = &c.model;
    let cfg = &m.config;
    let get = |id: ParamId| -> Tensor {
        vars.get(&id)
            .map(|v| v.as_tensor().clone())
            .unwrap_or_else(|| m.param(id).unwrap())
    };
    let rms = |x: &Tensor, w: &Tensor| -> Tensor {
        let r = (x.sqr().unwrap().mean_keepdim(1).unwrap() + cfg.rms_norm_eps)
            .unwrap()
            .sqrt()
            .unwrap()
            .recip()
            .unwrap();
        x.broadcast_mul(&r).unwrap().broadcast_mul(w).unwrap()
    };
    let (hd, h, hkv) = (
        cfg.head_dim,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
    );
    let inv = cfg.rope_inv_freq();
    let angles: Vec<f32> = c
        .positions
        .iter()
        .flat_map(|&pos| {
            let inv = &inv;
            (0..hd).map(move |i| pos as f32 * inv[i % (hd / 2)])
        })
        .collect();
    let angles = Tensor::from_vec(angles, (B, T, 1, hd), &Device::Cpu).unwrap();
    let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
    let rope = |x: &Tensor| -> Tensor {
        let x1 = x.narrow(3, 0, hd / 2).unwrap();
        let x2 = x.narrow(3, hd / 2, hd / 2).unwrap();
        let rot = Tensor::cat(&[&x2.neg().unwrap(), &x1], 3).unwrap();
        (x.broadcast_mul(&cos).unwrap() + rot.broadcast_mul(&sin).unwrap()).unwrap()
    };
    let linear = |x: &Tensor, layer: usize, module: TargetModule| -> Tensor {
        let w = get(ParamId::Proj(layer, module));
        let mut y = x.matmul(&w.t().unwrap()).unwrap();
        if let Some(l) = &m.blocks[layer].proj(module).lora {
            let mask = p
                .lora_dropout(
                    &Tensor::ones(x.dims(), DType::F32, &Device::Cpu).unwrap(),
                    l.dropout,
                    Site { layer, module },
                )
                .unwrap();
            let a = get(ParamId::LoraA(layer, module));
            let b = get(ParamId::LoraB(layer, module));
            let delta = (x * mask)
                .unwrap()
                .matmul(&a.t().unwrap())
                .unwrap()
                .matmul(&b.t().unwrap())
                .unwrap();
            y = (y + (delta * l.scale).unwrap()).unwrap();
        }
        y
    };
    let ids = Tensor::from_slice(&c.ids, B * T, &Device::Cpu).unwrap();
    let mut x = get(ParamId::Embed).index_select(&ids, 0).unwrap();
    let mask: Vec<f32> = (0..T * T)
        .map(|i| if i % T > i / T { -1e9 } else { 0.0 })
        .collect();
    let mask = Tensor::from_vec(mask, (T, T), &Device::Cpu).unwrap();
    for layer in 0..cfg.num_hidden_layers {
        let a = rms(&x, &get(ParamId::AttnNorm(layer)));
        let q = rope(
            &linear(&a, layer, TargetModule::QProj)
                .reshape((B, T, h, hd))
                .unwrap(),
        )
        .transpose(1, 2)
        .unwrap();
        let group = |t: Tensor| -> Tensor {
            t.transpose(1, 2)
                .unwrap()
                .unsqueeze(2)
                .unwrap()
                .expand((B, hkv, h / hkv, T, hd))
                .unwrap()
                .reshape((B, h, T, hd))
                .unwrap()
        };
        let k = group(rope(
            &linear(&a, layer, TargetModule::KProj)
                .reshape((B, T, hkv, hd))
                .unwrap(),
        ));
        let v = group(
            linear(&a, layer, TargetModule::VProj)
                .reshape((B, T, hkv, hd))
                .unwrap(),
        );
        let scores = (q
            .contiguous()
            .unwrap()
            .matmul(&k.t().unwrap().contiguous().unwrap())
            .unwrap()
            / (hd as f64).sqrt())
        .unwrap();
        let probs =
            candle_nn::ops::softmax(&scores.broadcast_add(&mask).unwrap(), D::Minus1).unwrap();
        let o = probs
            .matmul(&v.contiguous().unwrap())
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((B * T, h * hd))
            .unwrap();
        x = (x + linear(&o, layer, TargetModule::OProj)).unwrap();
        let n = rms(&x, &get(ParamId::MlpNorm(layer)));
        let g = linear(&n, layer, TargetModule::GateProj);
        let act =
            (candle_nn::ops::silu(&g).unwrap() * linear(&n, layer, TargetModule::UpProj)).unwrap();
        x = (x + linear(&act, layer, TargetModule::DownProj)).unwrap();
    }
    let head = if m.lm_head.is_some() {
        get(ParamId::LmHead)
    } else {
        get(ParamId::Embed)
    };
    let logp = candle_nn::ops::log_softmax(
        &rms(&x, &get(ParamId::FinalNorm))
            .matmul(&head.t().unwrap())
            .unwrap(),
        D::Minus1,
    )
    .unwrap();
    let onehot: Vec<f32> = c
        .targets
        .iter()
        .flat_map(|&t| (0..cfg.vocab_size).map(move |v| if t == v as i32 { 1.0 } else { 0.0 }))
        .collect();
    let onehot = Tensor::from_vec(onehot, (B * T, cfg.vocab_size), &Device::Cpu).unwrap();
    ((logp * onehot).unwrap().sum_all().unwrap().neg().unwrap() / n_targets).unwrap()
}

fn compare(c: &Case, dropout: bool) {
    let p = pass(c, dropout);
    let n_targets = c.targets.iter().filter(|&&t| t >= 0).count();
    let mut grads = BTreeMap::new();
    let loss = c
        .model
        .forward_backward(
            &c.ids,
            &c.targets,
            &p,
            1.0 / n_targets as f32,
            false,
            &mut grads,
        )
        .unwrap();
    assert_eq!(loss.n_targets, n_targets);
    let trainable = c.model.trainable();
    assert_eq!(
        grads.keys().copied().collect::<Vec<_>>(),
        {
            let mut t = trainable.clone();
            t.sort();
            t
        },
        "every trainable parameter gets a gradient, and only those"
    );

    let vars: HashMap<ParamId, Var> = trainable
        .iter()
        .map(|&id| (id, Var::from_tensor(&c.model.param(id).unwrap()).unwrap()))
        .collect();
    let ref_loss = reference_loss(c, &p, &vars, n_targets as f64);
    let ref_value = ref_loss.to_scalar::<f32>().unwrap() as f64;
    let ours = loss.loss_sum / n_targets as f64;
    assert!(
        (ours - ref_value).abs() <= 1e-5 * ref_value.abs(),
        "loss {ours} vs reference {ref_value}"
    );
    let ref_grads = ref_loss.backward().unwrap();
    for id in trainable {
        let want = ref_grads.get(vars[&id].as_tensor()).unwrap();
        let got = &grads[&id];
        let scale = want
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(scale > 0.0, "{id}: reference gradient is zero");
        assert!(
            diff <= 2e-4 * scale,
            "{id}: max |diff| {diff:e} vs max |grad| {scale:e}"
        );
    }
    // With checkpointing the recomputed forward must give identical gradients.
    let mut again = BTreeMap::new();
    c.model
        .forward_backward(
            &c.ids,
            &c.targets,
            &p,
            1.0 / n_targets as f32,
            true,
            &mut again,
        )
        .unwrap();
    for (id, g) in &grads {
        let diff = (g - &again[id])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(
            diff, 0.0,
            "{id}: gradient checkpointing changed the gradient"
        );
    }
}

#[test]
fn full_fine_tuning_gradients_match_autograd() {
    compare(&case(Mode::Full, &[], 0.0), false);
}

#[test]
fn lora_gradients_with_dropout_match_autograd() {
    let c = case(Mode::Lora, &TargetModule::ALL, 0.25);
    assert_eq!(c.model.trainable().len(), 2 * 7 * c.model.blocks.len());
    compare(&c, true);
}

#[test]
fn qlora_gradients_match_autograd_on_the_dequantised_base() {
    compare(
        &case(
            Mode::Qlora,
            &[TargetModule::QProj, TargetModule::VProj],
            0.1,
        ),
        true,
    );
}

/// Loss and gradients of one pass (with dropout and gradient checkpointing), all on the CPU in f32.
fn run(c: &Case) -> (f64, BTreeMap<ParamId, Tensor>) {
    let p = pass(c, true);
    let n_targets = c.targets.iter().filter(|&&t| t >= 0).count();
    let mut grads = BTreeMap::new();
    let loss = c
        .model
        .forward_backward(
            &c.ids,
            &c.targets,
            &p,
            1.0 / n_targets as f32,
            true,
            &mut grads,
        )
        .unwrap();
    let grads = grads
        .into_iter()
        .map(|(id, g)| {
            (
                id,
                g.to_device(&Device::Cpu)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap(),
            )
        })
        .collect();
    (loss.loss_sum / n_targets as f64, grads)
}

/// The whole pass on the GPU against the CPU, for every mode: in f32 the loss within 1e-5 and
/// every gradient within 1e-4 of its largest element; in bf16 (weights and activations) within
/// 2e-2 and 1e-1. Skipped without a GPU.
#[test]
fn the_gpu_pass_matches_the_cpu_pass() {
    let Ok(gpu) = Device::new_cuda(0) else {
        eprintln!("skipped: no CUDA device in this build or on this machine");
        return;
    };
    let qv = [TargetModule::QProj, TargetModule::VProj];
    for (mode, targets, dropout) in [
        (Mode::Full, &[][..], 0.0),
        (Mode::Lora, &TargetModule::ALL[..], 0.25),
        (Mode::Qlora, &qv[..], 0.1),
    ] {
        let (want_loss, want) = run(&case(mode, targets, dropout));
        for (dtype, loss_tol, grad_tol) in [(DType::F32, 1e-5, 1e-4), (DType::BF16, 2e-2, 1e-1)] {
            let mut c = case_on(mode, targets, dropout, &gpu);
            c.model.cast(dtype).unwrap();
            let (loss, got) = run(&c);
            assert!(
                (loss - want_loss).abs() <= loss_tol * want_loss.abs(),
                "{mode:?} {dtype:?}: loss {loss} vs CPU {want_loss}"
            );
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>()
            );
            for (id, w) in &want {
                let max = |t: &Tensor| {
                    t.abs()
                        .unwrap()
                        .max_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                };
                let diff = max(&(&got[id] - w).unwrap());
                assert!(
                    diff <= grad_tol * max(w),
                    "{mode:?} {dtype:?} {id}: max |diff| {diff:e} vs max |grad| {:e}",
                    max(w)
                );
            }
        }
    }
}
