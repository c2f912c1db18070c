//! A DeepSpeed JSON config onto ferrotune's `distributed` and `training` settings.
//!
//! `"auto"` values (filled in by the Hugging Face integration from the trainer's own arguments)
//! keep the training config's value.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Kind, MigrateError, Report, as_bool, as_f64, as_u64, bad, is_unset, put, set, show};

/// Top-level keys of a DeepSpeed config, from DeepSpeed's configuration documentation.
pub const KNOWN_KEYS: &[&str] = &[
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "optimizer",
    "scheduler",
    "fp16",
    "bf16",
    "amp",
    "zero_optimization",
    "gradient_clipping",
    "prescale_gradients",
    "gradient_predivide_factor",
    "sparse_gradients",
    "communication_data_type",
    "steps_per_print",
    "wall_clock_breakdown",
    "dump_state",
    "activation_checkpointing",
    "flops_profiler",
    "tensorboard",
    "wandb",
    "csv_monitor",
    "comet",
    "comms_logger",
    "autotuning",
    "elasticity",
    "aio",
    "checkpoint",
    "data_types",
    "data_efficiency",
    "curriculum_learning",
    "compression_training",
    "sparse_attention",
    "pipeline",
    "zero_allow_untested_optimizer",
    "zero_force_ds_cpu_optimizer",
    "memory_breakdown",
    "disable_allgather",
    "seq_parallel_communication_data_type",
    "graph_harvesting",
    "use_data_before_expert_parallelism",
    "nebula",
    "timers",
    "hybrid_engine",
    "torch_autocast",
    "compile",
    "weight_quantization",
    "quantize_training",
];

/// Keys of `zero_optimization`.
pub const ZERO_KEYS: &[&str] = &[
    "stage",
    "allgather_partitions",
    "allgather_bucket_size",
    "overlap_comm",
    "reduce_scatter",
    "reduce_bucket_size",
    "contiguous_gradients",
    "offload_param",
    "offload_optimizer",
    "stage3_max_live_parameters",
    "stage3_max_reuse_distance",
    "stage3_prefetch_bucket_size",
    "stage3_param_persistence_threshold",
    "sub_group_size",
    "elastic_checkpoint",
    "stage3_gather_16bit_weights_on_model_save",
    "stage3_gather_fp16_weights_on_model_save",
    "ignore_unused_parameters",
    "round_robin_gradients",
    "zero_hpz_partition_size",
    "zero_quantized_weights",
    "zero_quantized_nontrainable_weights",
    "zero_quantized_gradients",
    "mics_shard_size",
    "mics_hierarchical_params_gather",
    "memory_efficient_linear",
    "pipeline_loading_checkpoint",
    "override_module_apply",
    "load_from_fp32_weights",
    "cpu_offload",
    "cpu_offload_params",
    "cpu_offload_use_pin_memory",
    "legacy_stage1",
    "use_multi_rank_bucket_allreduce",
    "log_trace_cache_warnings",
];

/// Bytes per gradient element: ferrotune's trainable parameters and gradients are f32.
const GRAD_BYTES: f64 = 4.0;

/// ferrotune's strategy for a ZeRO stage.
pub fn strategy_for_stage(stage: u64) -> &'static str {
    match stage {
        0 => "ddp",
        1 | 2 => "zero2",
        _ => "zero3",
    }
}

/// The ZeRO stage in a file name such as `zero2.json` or `zero3_bf16.json`.
pub fn stage_from_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let pos = name.find("zero")?;
    let digit = name[pos + 4..]
        .trim_start_matches(['_', '-'])
        .chars()
        .next()?;
    digit.to_digit(10).filter(|d| *d <= 3).map(u64::from)
}

/// Sets the strategy for a stage without a file to read.
pub fn apply_stage(stage: u64, out: &mut Value) {
    set(
        out,
        "distributed.strategy",
        json!(strategy_for_stage(stage)),
    );
}

/// Finds a DeepSpeed file named inside `by`: as given (the working directory), then beside `by`.
pub fn resolve(by: &Path, target: &Path) -> Option<PathBuf> {
    if target.is_file() {
        return Some(target.to_path_buf());
    }
    let beside = by.parent()?.join(target);
    beside.is_file().then_some(beside)
}

fn is_auto(v: &Value) -> bool {
    show(v) == "auto"
}

/// Maps a DeepSpeed document into the ferrotune document `out`.
pub fn map(doc: &Value, file: &Path, out: &mut Value, r: &mut Report) -> Result<(), MigrateError> {
    let src = doc.as_object().expect("checked by the caller");
    for (key, v) in src {
        let k = key.as_str();
        if !KNOWN_KEYS.contains(&k) {
            r.unknown(file, k, Kind::DeepSpeed);
            continue;
        }
        if is_auto(v) {
            r.ignore(file, k, "auto: the training config's value is kept");
            continue;
        }
        match k {
            "zero_optimization" => map_zero(v, file, out, r)?,
            "train_micro_batch_size_per_gpu" => {
                let n = count(v, file, k)?;
                put(out, r, file, k, "training.micro_batch_size", json!(n));
            }
            "gradient_accumulation_steps" => {
                let n = count(v, file, k)?;
                put(
                    out,
                    r,
                    file,
                    k,
                    "training.gradient_accumulation_steps",
                    json!(n),
                );
            }
            "train_batch_size" => r.ignore(
                file,
                k,
                "ferrotune's global batch is micro_batch_size x gradient_accumulation_steps x \
                 world size",
            ),
            "gradient_clipping" => {
                let f = as_f64(v).ok_or_else(|| bad(file, k, "must be a number"))?;
                put(out, r, file, k, "training.max_grad_norm", json!(f));
            }
            "bf16" => {
                if enabled(v) == Some(true) {
                    put(out, r, file, k, "training.dtype", json!("bf16"));
                } else {
                    r.ignore(file, k, "off or auto: training.dtype is kept");
                }
            }
            "fp16" | "amp" => {
                if enabled(v) == Some(true) {
                    r.unsupported(
                        file,
                        k,
                        "fp16 / AMP is not implemented: bf16 on CUDA, f32 on the CPU",
                    );
                } else {
                    r.ignore(file, k, "off");
                }
            }
            "optimizer" => map_optimizer(v, file, out, r)?,
            "scheduler" => map_scheduler(v, file, out, r)?,
            "steps_per_print"
            | "wall_clock_breakdown"
            | "dump_state"
            | "memory_breakdown"
            | "flops_profiler"
            | "comms_logger"
            | "timers"
            | "communication_data_type"
            | "prescale_gradients"
            | "gradient_predivide_factor"
            | "zero_allow_untested_optimizer"
            | "zero_force_ds_cpu_optimizer"
            | "aio"
            | "checkpoint"
            | "compile" => r.ignore(
                file,
                k,
                "a runtime or logging detail with no effect on what is trained",
            ),
            "activation_checkpointing" => {
                r.ignore(file, k, "ferrotune's is training.gradient_checkpointing")
            }
            _ if is_unset(v) || enabled(v) == Some(false) => r.ignore(file, k, "not set"),
            _ => r.unsupported(file, k, "ferrotune has no equivalent"),
        }
    }
    Ok(())
}

fn enabled(v: &Value) -> Option<bool> {
    match v {
        Value::Object(o) => match o.get("enabled") {
            Some(e) if is_auto(e) => None,
            Some(e) => as_bool(e),
            None => Some(true),
        },
        other => as_bool(other),
    }
}

fn count(v: &Value, file: &Path, key: &str) -> Result<u64, MigrateError> {
    as_u64(v).ok_or_else(|| {
        bad(
            file,
            key,
            format!("must be a whole number or \"auto\", got {}", show(v)),
        )
    })
}

fn map_zero(v: &Value, file: &Path, out: &mut Value, r: &mut Report) -> Result<(), MigrateError> {
    let Some(zero) = v.as_object() else {
        return Err(bad(file, "zero_optimization", "must be a mapping"));
    };
    let stage = match zero.get("stage") {
        None => 0,
        Some(s) => as_u64(s)
            .filter(|s| *s <= 3)
            .ok_or_else(|| bad(file, "zero_optimization.stage", "must be 0, 1, 2 or 3"))?,
    };
    let strategy = strategy_for_stage(stage);
    put(
        out,
        r,
        file,
        "zero_optimization.stage",
        "distributed.strategy",
        json!(strategy),
    );
    if stage == 1 {
        r.mapped.last_mut().expect("just pushed").to +=
            " (also shards the gradients; the result is the same)";
    }
    let mut bucket_from_reduce = false;
    for (key, v) in zero {
        let k = format!("zero_optimization.{key}");
        if !ZERO_KEYS.contains(&key.as_str()) {
            r.unknown(file, k, Kind::DeepSpeed);
            continue;
        }
        match key.as_str() {
            "stage" => {}
            "reduce_bucket_size" | "allgather_bucket_size" => {
                if is_auto(v) || v.is_null() {
                    r.ignore(file, k, "auto: distributed.bucket_size_mb is kept");
                    continue;
                }
                let elements =
                    as_f64(v).ok_or_else(|| bad(file, &k, "must be a number of elements"))?;
                if key == "allgather_bucket_size"
                    && (bucket_from_reduce || zero.contains_key("reduce_bucket_size"))
                {
                    r.ignore(
                        file,
                        k,
                        "ferrotune has one bucket size; reduce_bucket_size sets it",
                    );
                    continue;
                }
                let mb = (elements * GRAD_BYTES / (1024.0 * 1024.0) * 100.0).round() / 100.0;
                put(out, r, file, &k, "distributed.bucket_size_mb", json!(mb));
                r.mapped.last_mut().expect("just pushed").to +=
                    &format!(" ({elements} f32 gradient elements)");
                bucket_from_reduce |= key == "reduce_bucket_size";
            }
            "offload_optimizer" | "offload_param" => {
                let device = v.get("device").map(show).unwrap_or_else(|| {
                    if v.is_null() {
                        "none".into()
                    } else {
                        "cpu".into()
                    }
                });
                if device == "none" {
                    r.ignore(file, k, "no offload");
                } else {
                    r.unsupported(
                        file,
                        k,
                        format!(
                            "offload to {device} is not implemented: everything stays on the device"
                        ),
                    );
                }
            }
            "cpu_offload" | "cpu_offload_params" => {
                if as_bool(v) == Some(true) {
                    r.unsupported(file, k, "CPU offload is not implemented");
                } else {
                    r.ignore(file, k, "off");
                }
            }
            "zero_quantized_weights"
            | "zero_quantized_gradients"
            | "zero_quantized_nontrainable_weights"
            | "zero_hpz_partition_size"
            | "mics_shard_size"
                if !is_unset(v) && show(v) != "1" =>
            {
                r.unsupported(file, k, "ZeRO++ / MiCS partitioning is not implemented")
            }
            _ => r.ignore(
                file,
                k,
                "a communication or memory-tuning detail with no effect on what is trained \
                 (ferrotune overlaps communication and gathers full weights on save)",
            ),
        }
    }
    Ok(())
}

fn map_optimizer(
    v: &Value,
    file: &Path,
    out: &mut Value,
    r: &mut Report,
) -> Result<(), MigrateError> {
    let kind = v.get("type").map(show).unwrap_or_default();
    match kind.to_ascii_lowercase().as_str() {
        "adamw" | "adam" | "fusedadam" | "cpuadam" => {
            r.map(file, "optimizer.type", format!("AdamW ({kind})"))
        }
        other => r.unsupported(
            file,
            "optimizer.type",
            format!("`{other}`: ferrotune's optimizer is AdamW; AdamW is used"),
        ),
    }
    each_param(v, "optimizer", file, r, |key, k, p, r| {
        match key {
            "lr" => put(
                out,
                r,
                file,
                &k,
                "training.learning_rate",
                json!(num(p, file, &k)?),
            ),
            "weight_decay" => put(
                out,
                r,
                file,
                &k,
                "training.weight_decay",
                json!(num(p, file, &k)?),
            ),
            "eps" => put(
                out,
                r,
                file,
                &k,
                "training.adam_epsilon",
                json!(num(p, file, &k)?),
            ),
            "betas" => {
                let b: Vec<f64> = p
                    .as_array()
                    .map(|a| a.iter().filter_map(as_f64).collect())
                    .unwrap_or_default();
                if b.len() != 2 {
                    return Err(bad(file, &k, "must be [beta1, beta2]"));
                }
                put(out, r, file, &k, "training.adam_beta1", json!(b[0]));
                set(out, "training.adam_beta2", json!(b[1]));
                r.mapped.last_mut().expect("just pushed").to +=
                    &format!(", training.adam_beta2 = {}", b[1]);
            }
            "adam_w_mode" | "torch_adam" | "fused" => r.ignore(file, k, "an implementation choice"),
            _ => r.unsupported(file, k, "ferrotune has no equivalent"),
        }
        Ok(())
    })
}

fn map_scheduler(
    v: &Value,
    file: &Path,
    out: &mut Value,
    r: &mut Report,
) -> Result<(), MigrateError> {
    let kind = v.get("type").map(show).unwrap_or_default();
    let schedule = match kind.as_str() {
        "WarmupLR" => Some("constant"),
        "WarmupDecayLR" => Some("linear"),
        "WarmupCosineLR" => Some("cosine"),
        _ => None,
    };
    match schedule {
        Some(s) => put(
            out,
            r,
            file,
            "scheduler.type",
            "training.lr_scheduler",
            json!(s),
        ),
        None => r.unsupported(
            file,
            "scheduler.type",
            format!(
                "`{kind}`: ferrotune schedules cosine, linear or constant after a linear warm-up"
            ),
        ),
    }
    each_param(v, "scheduler", file, r, |key, k, p, r| {
        match key {
            "warmup_num_steps" => {
                put(
                    out,
                    r,
                    file,
                    &k,
                    "training.warmup_steps",
                    json!(count(p, file, &k)?),
                );
                super::unset(out, "training.warmup_ratio");
            }
            "total_num_steps" => put(
                out,
                r,
                file,
                &k,
                "training.max_steps",
                json!(count(p, file, &k)?),
            ),
            "warmup_max_lr" => put(
                out,
                r,
                file,
                &k,
                "training.learning_rate",
                json!(num(p, file, &k)?),
            ),
            "warmup_min_lr" | "cos_min_ratio" | "warmup_min_ratio" if num(p, file, &k)? == 0.0 => {
                r.ignore(file, k, "0: ferrotune warms up from zero")
            }
            "warmup_type" if show(p) == "linear" => {
                r.ignore(file, k, "ferrotune warms up linearly")
            }
            "warmup_type" => r.unsupported(file, k, "ferrotune warms up linearly"),
            _ => r.unsupported(file, k, "ferrotune has no equivalent"),
        }
        Ok(())
    })
}

/// Calls `each(key, dotted key, value, report)` for the entries of `v.params` in order, except
/// `auto` ones, which are reported as keeping the training config's value.
fn each_param(
    v: &Value,
    section: &str,
    file: &Path,
    r: &mut Report,
    mut each: impl FnMut(&str, String, &Value, &mut Report) -> Result<(), MigrateError>,
) -> Result<(), MigrateError> {
    let params = v.get("params").and_then(Value::as_object);
    for (key, p) in params.into_iter().flatten() {
        let k = format!("{section}.params.{key}");
        if is_auto(p) {
            r.ignore(file, k, "auto: the training config's value is kept");
        } else {
            each(key, k, p, r)?;
        }
    }
    Ok(())
}

fn num(v: &Value, file: &Path, key: &str) -> Result<f64, MigrateError> {
    as_f64(v).ok_or_else(|| bad(file, key, format!("must be a number, got {}", show(v))))
}
