//! The training loop on the GPU against the same loop on the CPU, in f32: full fine-tuning and
//! LoRA on a small random Llama give the same per-step losses and trained parameters (1e-4
//! relative: other summation orders in the kernels), and the GPU holds no more than the
//! optimizer state, the model and the activations (the DDP step keeps its flat buffers on the
//! device and must not copy them per parameter). In bf16, the model's weights follow the f32
//! master values step by step. Skipped with a message without a CUDA build or GPU.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ferrotune::data::Sample;
use ferrotune::model::config::LlamaConfig;
use ferrotune::model::llama::{Adaptation, Llama};
use ferrotune::model::load::expected_tensors;
use ferrotune::model::params::ParamId;
use ferrotune::train::fit::fit;
use ferrotune::train::metrics;
use ferrotune::train::signals::StopFlag;
use ferrotune_config::Config;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const STEPS: u64 = 4;

fn llama_config() -> LlamaConfig {
    LlamaConfig::from_hf_json(
        r#"{"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
            "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 4096,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256,
            "tie_word_embeddings": true}"#,
    )
    .unwrap()
}

fn config(mode: &str, device: &str, dtype: &str, out: &Path) -> Config {
    let value = serde_json::json!({
        "model": {"path": "random-init"},
        "data": {"train": "random-tokens"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0,
                 "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
        "training": {
            "mode": mode, "max_steps": STEPS, "micro_batch_size": 2,
            "gradient_accumulation_steps": 2, "learning_rate": 1e-3, "lr_scheduler": "constant",
            "warmup_steps": 0, "max_grad_norm": 0.5, "max_seq_length": 64, "logging_steps": 1000,
            "save_steps": 0, "save_total_limit": 1, "device": device, "dtype": dtype,
        },
        "eval": {"before_training": false},
        "output": {"dir": out, "resume": false},
    });
    Config::from_value(value, Path::new("gpu_fit")).unwrap()
}

/// What [`train`] returns: per-step losses, the trainable parameters before and after training
/// (on the CPU, in f32), and the optimizer state's bytes.
struct Trained {
    losses: Vec<f64>,
    initial: HashMap<ParamId, Tensor>,
    params: HashMap<ParamId, Tensor>,
    state_bytes: usize,
}

/// The model's trainable parameters, on the CPU in f32.
fn trainable(model: &Llama) -> HashMap<ParamId, Tensor> {
    model
        .trainable()
        .into_iter()
        .map(|id| {
            let t = model.param(id).unwrap();
            (
                id,
                t.to_device(&Device::Cpu)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap(),
            )
        })
        .collect()
}

/// Trains on `device` with weights and activations in `dtype`.
fn train(mode: &str, device: &Device, dtype: DType) -> Trained {
    let c = llama_config();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let tensors = expected_tensors(&c)
        .into_iter()
        .map(|(id, shape)| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.random_range(-0.05..0.05)).collect();
            (
                id.hf_name(),
                Tensor::from_vec(values, shape, device).unwrap(),
            )
        })
        .collect();
    let out = tempfile::tempdir().unwrap();
    let name = if device.is_cpu() { "cpu" } else { "cuda" };
    let dtype_name = if dtype == DType::F32 { "f32" } else { "bf16" };
    let config = config(mode, name, dtype_name, out.path());
    let mut model = Llama::new(c, tensors, &Adaptation::from_config(&config), 7).unwrap();
    model.cast(dtype).unwrap();
    let initial = trainable(&model);
    let samples: Vec<Sample> = (0..2 * 2 * STEPS as usize)
        .map(|_| Sample {
            ids: (0..64).map(|_| rng.random_range(0..4096)).collect(),
            prompt_len: 8,
        })
        .collect();
    let stop = StopFlag::install().unwrap();
    let mut comm = ferrotune::dist::connect(
        &ferrotune::dist::WorldEnv::local(1, 0, 0),
        &config.distributed,
        device,
    )
    .unwrap();
    let outcome = fit(
        &mut model,
        &samples,
        0,
        &config,
        out.path(),
        &stop,
        None,
        comm.as_mut(),
    )
    .unwrap();
    let losses = metrics::read(&out.path().join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|r| r.loss)
        .collect();
    Trained {
        losses,
        initial,
        params: trainable(&model),
        state_bytes: outcome.state_bytes,
    }
}

fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: no CUDA device in this build or on this machine ({e})");
            None
        }
    }
}

#[test]
fn training_on_the_gpu_matches_the_cpu_holds_only_its_state_and_updates_bf16_weights() {
    let Some(gpu) = gpu() else { return };
    // Adapters first: the high-water mark only grows, and full fine-tuning holds more.
    for mode in ["lora", "full"] {
        let Trained {
            losses: want_losses,
            params: want,
            ..
        } = train(mode, &Device::Cpu, DType::F32);
        let Trained {
            losses,
            params: got,
            state_bytes,
            ..
        } = train(mode, &gpu, DType::F32);
        assert_eq!(losses.len(), STEPS as usize, "{mode}");
        for (step, (g, w)) in losses.iter().zip(&want_losses).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs(),
                "{mode} step {step}: loss {g} vs {w}"
            );
        }
        for (id, w) in &want {
            let g = &got[id];
            let diff = (g - w).unwrap().abs().unwrap().max_all().unwrap();
            let scale = w.abs().unwrap().max_all().unwrap();
            let (d, s) = (
                diff.to_scalar::<f32>().unwrap(),
                scale.to_scalar::<f32>().unwrap(),
            );
            assert!(
                d <= 1e-4 * s.max(1e-3),
                "{mode} {id}: max difference {d} (max {s})"
            );
        }
        // The pool's high-water mark: the state, the model, its random f32 source and the
        // activations of one micro-batch fit well within four times the state.
        let peak = ferrotune::device::peak_gpu_bytes(&gpu).unwrap().unwrap();
        assert!(
            peak as usize <= 4 * state_bytes + (64 << 20),
            "{mode}: peak GPU memory {peak} bytes for {state_bytes} bytes of state"
        );
    }
    bf16_weights_follow_the_master_values(&gpu);
}

/// In bf16 the model's weights are a rounded copy of the f32 master values, rewritten by each
/// AdamW step: the weights the passes read move as the f32 run's do, to within bf16's rounding
/// of their values (a copy left behind would not move at all), and the losses follow the f32
/// run's to bf16 precision. A tensor whose steps are below that rounding (LoRA A, which starts
/// learning only once B has moved away from zero) need not move; every mode has tensors whose
/// steps bf16 shows. (Called after the f32 runs, whose memory high-water marks it would raise.)
fn bf16_weights_follow_the_master_values(gpu: &Device) {
    for mode in ["lora", "full"] {
        let want = train(mode, &Device::Cpu, DType::F32);
        let got = train(mode, gpu, DType::BF16);
        for (step, (g, w)) in got.losses.iter().zip(&want.losses).enumerate() {
            assert!(
                (g - w).abs() <= 2e-2 * w.abs(),
                "{mode} step {step}: bf16 loss {g} vs f32 {w}"
            );
        }
        let mean_abs = |t: &Tensor| {
            t.abs()
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let mut visible = 0;
        for (id, trained) in &want.params {
            let step_f32 = (trained - &want.initial[id]).unwrap();
            let step_bf16 = (&got.params[id] - &got.initial[id]).unwrap();
            let (moved, off) = (
                mean_abs(&step_f32),
                mean_abs(&(&step_bf16 - &step_f32).unwrap()),
            );
            // bf16 keeps 8 significant bits: rounding moves a value by at most 2⁻⁸ of it.
            let rounding = mean_abs(&want.initial[id]) / 256.0;
            assert!(
                moved > 0.0 && off <= 0.5 * moved + rounding,
                "{mode} {id}: the bf16 weights moved {} on average, {off} away from the f32 \
                 run's {moved} (bf16 rounding of these values: {rounding})",
                mean_abs(&step_bf16)
            );
            if moved > 4.0 * rounding {
                visible += 1;
            }
        }
        assert!(
            visible > 0,
            "{mode}: no tensor moved by more than bf16's rounding of its values"
        );
    }
}
