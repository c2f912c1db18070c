//! `train-throughput`: times ferrotune's own training loop (`ferrotune::train::fit::fit`, the one
//! `ferrotune train` runs) on a random-init Llama shape and random token rows, and prints one
//! JSON line with the same keys as the PyTorch reference (`pytorch_reference.py`), so that
//! `bench/compare.py` can put the two side by side.

mod shapes;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};
use clap::{Parser, ValueEnum};
use ferrotune::data::Sample;
use ferrotune::dist::{WorldEnv, launch};
use ferrotune::model::llama::{Adaptation, Llama};
use ferrotune::model::load::expected_tensors;
use ferrotune::model::params::ParamId;
use ferrotune::report::RunRecorder;
use ferrotune::train::fit::fit;
use ferrotune::train::metrics::StepRecord;
use ferrotune::train::signals::StopFlag;
use ferrotune_config::Config;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use shapes::{LORA_R, Shape, flops_per_token, matmul_and_lora_params};

/// Time training steps of ferrotune on a random-init Llama shape; prints one JSON line.
///
/// Each step is what `ferrotune train` does: forward and backward of every micro-batch, the
/// gradient norm, clipping at 1.0, AdamW, and the step record. Rows are random token ids of
/// exactly `--seq-len` tokens whose loss is taken on every position but the first, as the
/// reference's `labels = input_ids` does.
#[derive(Debug, Parser)]
#[command(max_term_width = 100)]
struct Args {
    /// Model shape (random weights, normal with std 0.02; norms 1).
    #[arg(long, value_enum, default_value = "tiny")]
    model: Shape,
    /// Fine-tuning mode.
    #[arg(long, value_enum, default_value = "lora")]
    mode: BenchMode,
    /// Tokens per row.
    #[arg(long, default_value_t = 512)]
    seq_len: usize,
    /// Rows per step (one micro-batch, no accumulation).
    #[arg(long, default_value_t = 8)]
    micro_batch: usize,
    /// Recompute each block's activations in the backward pass.
    #[arg(long)]
    grad_ckpt: bool,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    steps: u64,
    /// Untimed warm-up steps before them.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seed of the weights and the token rows.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// How ranks split the work when NPROC_PER_NODE > 1 starts several (ddp, zero2, zero3).
    #[arg(long, default_value = "ddp")]
    strategy: String,
    /// Peak TFLOP/s of the device, for MFU.
    #[arg(long, default_value_t = 989.0)]
    peak_tflops: f64,
    /// Keep only this many of the shape's blocks (for profiles: every block runs the same kernels).
    #[arg(long)]
    layers: Option<usize>,
}

/// The modes the reference benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchMode {
    Full,
    Lora,
    Qlora,
}

impl BenchMode {
    fn name(self) -> &'static str {
        match self {
            BenchMode::Full => "full",
            BenchMode::Lora => "lora",
            BenchMode::Qlora => "qlora",
        }
    }
}

/// Where the launcher tells its ranks to write.
const SHARED_OUT: &str = "FERROTUNE_BENCH_OUT";

fn main() -> anyhow::Result<()> {
    // SAFETY: first thing in `main`, before any other thread exists.
    unsafe { ferrotune::runtime::configure() };
    let args = Args::parse();
    let world_env = WorldEnv::from_env()?;
    let out = tempfile::tempdir().context("creating a scratch output directory")?;
    if let Some(env) = world_env.as_ref().filter(|e| launch::should_launch(e)) {
        // The ranks share one output directory, as they would on a shared volume.
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var(SHARED_OUT, out.path()) };
        launch::run(env)?;
        return Ok(());
    }
    let out_dir = std::env::var_os(SHARED_OUT).map_or_else(|| out.path().to_path_buf(), Into::into);
    let env = world_env.unwrap_or_else(|| WorldEnv::local(1, 0, 0));
    let world = env.world_size;
    let started = Instant::now();
    let config = bench_config(&args, &out_dir)?;
    let device = ferrotune::device::resolve(config.training.device, 0)?;
    let mut llama_config = args.model.config();
    if let Some(layers) = args.layers {
        anyhow::ensure!(layers > 0, "--layers must be at least 1");
        llama_config.num_hidden_layers = layers;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let tensors = random_weights(&llama_config, &device, &mut rng)?;
    let mut model = Llama::new(
        llama_config.clone(),
        tensors,
        &Adaptation::from_config(&config),
        args.seed,
    )?;
    model.cast(ferrotune::device::dtype(config.training.dtype, &device)?)?;
    let rows = (args.warmup + args.steps) as usize * args.micro_batch * world;
    let vocab = llama_config.vocab_size as u32;
    let samples: Vec<Sample> = (0..rows)
        .map(|_| Sample {
            ids: (0..args.seq_len)
                .map(|_| rng.random_range(0..vocab))
                .collect(),
            prompt_len: 1,
        })
        .collect();
    let setup_s = started.elapsed().as_secs_f64();

    let leader = env.rank() == 0;
    let mut recorder = if leader {
        Some(RunRecorder::create(&out_dir, &device)?)
    } else {
        None
    };
    let stop = StopFlag::install()?;
    let mut comm = ferrotune::dist::connect(&env, &config.distributed, &device)?;
    let outcome = fit(
        &mut model,
        &samples,
        0,
        &config,
        &out_dir,
        &stop,
        recorder.as_mut(),
        comm.as_mut(),
    )?;
    // Every rank's memory, gathered to all: (accounted state, peak RSS) in MiB.
    let mib = |b: u64| (b as f64 / (1u64 << 20) as f64) as f32;
    let rss = ferrotune::report::host::peak_rss_bytes().unwrap_or(0);
    let memory = comm.all_gather(&[mib(outcome.state_bytes as u64), mib(rss)], 2 * world)?;
    if leader {
        let records = read_records(&out_dir.join("metrics.jsonl"))?;
        let mut line = result(&args, &llama_config, &records, setup_s, &model, world)?;
        line["world"] = world.into();
        line["strategy"] = args.strategy.clone().into();
        line["state_mib_per_rank"] = memory.iter().step_by(2).map(|&m| f64::from(m)).collect();
        line["peak_rss_mib_per_rank"] = memory
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&m| f64::from(m))
            .collect();
        println!("{line}");
    }
    Ok(())
}

/// The trainer config of a benchmark run: the reference's hyper-parameters, one micro-batch a
/// step, constant learning rate, no checkpoints but the last, no evaluation.
fn bench_config(args: &Args, out: &Path) -> anyhow::Result<Config> {
    let full = args.mode == BenchMode::Full;
    let yaml = serde_json::json!({
        "model": {"path": "random-init", "name": args.model.name()},
        "data": {"train": "random-tokens"},
        "lora": {
            "r": LORA_R, "alpha": 32, "dropout": 0.05,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        },
        "training": {
            "mode": args.mode.name(),
            "max_steps": args.warmup + args.steps,
            "micro_batch_size": args.micro_batch,
            "gradient_accumulation_steps": 1,
            "learning_rate": if full { 1e-5 } else { 2e-4 },
            "lr_scheduler": "constant",
            "warmup_steps": 0,
            "max_grad_norm": 1.0,
            "max_seq_length": args.seq_len,
            "gradient_checkpointing": args.grad_ckpt,
            "logging_steps": 1_000_000,
            "save_steps": 0,
            "save_total_limit": 1,
            "device": args.device,
        },
        "distributed": {"strategy": args.strategy},
        "eval": {"before_training": false},
        "output": {"dir": out, "resume": false},
    });
    Ok(Config::from_value(yaml, Path::new("train-throughput"))?)
}

/// Every weight of `config`, normal(0, 0.02) as transformers initialises Llama; norms 1.
fn random_weights(
    config: &ferrotune::model::config::LlamaConfig,
    device: &Device,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<HashMap<String, Tensor>> {
    let normal = Normal::new(0f32, 0.02).expect("valid std");
    expected_tensors(config)
        .into_iter()
        .map(|(id, shape)| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = match id {
                ParamId::AttnNorm(_) | ParamId::MlpNorm(_) | ParamId::FinalNorm => vec![1.0; n],
                _ => (0..n).map(|_| normal.sample(rng)).collect(),
            };
            Ok((id.hf_name(), Tensor::from_vec(values, shape, device)?))
        })
        .collect()
}

fn read_records(path: &Path) -> anyhow::Result<Vec<StepRecord>> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(|line| Ok(serde_json::from_str(line)?))
        .collect()
}

/// The JSON record, with the reference's keys.
fn result(
    args: &Args,
    c: &ferrotune::model::config::LlamaConfig,
    records: &[StepRecord],
    setup_s: f64,
    model: &Llama,
    world: usize,
) -> anyhow::Result<serde_json::Value> {
    let timed: Vec<&StepRecord> = records.iter().skip(args.warmup as usize).collect();
    anyhow::ensure!(!timed.is_empty(), "no timed steps were recorded");
    let mut secs: Vec<f64> = timed
        .iter()
        .map(|r| r.tokens as f64 / r.tokens_per_second)
        .collect();
    secs.sort_by(f64::total_cmp);
    let median = secs[secs.len() / 2];
    // The reference counts every token of a row (its micro_batch · seq_len per step, per rank).
    let tokens = (args.micro_batch * args.seq_len * world) as f64;
    let tps = tokens / median;
    let fpt = flops_per_token(c, args.mode == BenchMode::Full, args.seq_len);
    let (n_matmul, n_lora) = matmul_and_lora_params(c);
    let n_trainable: usize = model
        .trainable()
        .into_iter()
        .map(|id| model.param(id).map(|t| t.elem_count()))
        .sum::<anyhow::Result<usize>>()?;
    let peak = records.iter().filter_map(|r| r.peak_memory_bytes).max();
    let round = |x: f64, digits: i32| (x * 10f64.powi(digits)).round() / 10f64.powi(digits);
    Ok(serde_json::json!({
        "impl": "ferrotune",
        "model": args.model.name(),
        "mode": args.mode.name(),
        "seq_len": args.seq_len,
        "layers": c.num_hidden_layers,
        "micro_batch": args.micro_batch,
        "grad_ckpt": if args.grad_ckpt { "on" } else { "off" },
        "device": args.device,
        "dtype": format!("{:?}", model.dtype()).to_lowercase(),
        "status": "ok",
        "tokens_per_s": round(tps, 1),
        "tokens_per_s_mean": round(tokens * secs.len() as f64 / secs.iter().sum::<f64>(), 1),
        "step_ms": round(median * 1e3, 2),
        "step_ms_min": round(secs[0] * 1e3, 2),
        "step_ms_max": round(secs[secs.len() - 1] * 1e3, 2),
        "peak_rss_gib": peak.map(|b| round(b as f64 / (1u64 << 30) as f64, 2)),
        "peak_mem_gib": ferrotune::device::peak_gpu_bytes(model.device())?
            .map(|b| round(b as f64 / (1u64 << 30) as f64, 2)),
        "mfu": round(tps * fpt / (args.peak_tflops * 1e12), 4),
        "flops_per_token": fpt,
        "n_matmul_params": n_matmul,
        "n_lora_params": n_lora,
        "n_trainable": n_trainable,
        "loss_first": records.first().map(|r| round(r.loss, 4)),
        "loss_last": records.last().map(|r| round(r.loss, 4)),
        "warmup": args.warmup,
        "steps": args.steps,
        "setup_s": round(setup_s, 2),
    }))
}
