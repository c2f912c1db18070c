//! accelerate's launch config (what `accelerate config` writes) onto ferrotune's `distributed`
//! settings, plus the launch shape (machines x processes) that the world size comes from.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{
    Kind, LaunchShape, MigrateError, Report, as_bool, as_u64, bad, count, is_unset, put, show,
};

/// Top-level keys of an accelerate config file, from accelerate's documentation.
pub const KNOWN_KEYS: &[&str] = &[
    "compute_environment",
    "debug",
    "distributed_type",
    "downcast_bf16",
    "enable_cpu_affinity",
    "fsdp_config",
    "deepspeed_config",
    "megatron_lm_config",
    "dynamo_config",
    "ipex_config",
    "mpirun_config",
    "fp8_config",
    "parallelism_config",
    "gpu_ids",
    "machine_rank",
    "main_process_ip",
    "main_process_port",
    "main_training_function",
    "mixed_precision",
    "num_machines",
    "num_processes",
    "rdzv_backend",
    "same_network",
    "tpu_env",
    "tpu_use_cluster",
    "tpu_use_sudo",
    "tpu_name",
    "tpu_zone",
    "commands",
    "command_file",
    "use_cpu",
    "dynamo_backend",
];

/// Keys of `fsdp_config` (accelerate's `fsdp_` names; Axolotl also accepts them unprefixed).
pub const FSDP_KEYS: &[&str] = &[
    "fsdp_sharding_strategy",
    "fsdp_reshard_after_forward",
    "fsdp_offload_params",
    "fsdp_auto_wrap_policy",
    "fsdp_transformer_layer_cls_to_wrap",
    "fsdp_min_num_params",
    "fsdp_backward_prefetch",
    "fsdp_backward_prefetch_policy",
    "fsdp_forward_prefetch",
    "fsdp_state_dict_type",
    "fsdp_sync_module_states",
    "fsdp_use_orig_params",
    "fsdp_cpu_ram_efficient_loading",
    "fsdp_activation_checkpointing",
    "fsdp_version",
    "fsdp_limit_all_gathers",
    "fsdp_cpu_offload_pin_memory",
];

/// Keys of `deepspeed_config` in an accelerate config.
pub const DEEPSPEED_KEYS: &[&str] = &[
    "deepspeed_config_file",
    "zero_stage",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "offload_optimizer_device",
    "offload_param_device",
    "offload_optimizer_nvme_path",
    "offload_param_nvme_path",
    "zero3_init_flag",
    "zero3_save_16bit_model",
    "deepspeed_multinode_launcher",
    "deepspeed_hostfile",
    "deepspeed_exclusion_filter",
    "deepspeed_inclusion_filter",
    "deepspeed_moe_layer_cls_names",
];

/// An accelerate config mapped: the launch shape and the DeepSpeed file it names.
#[derive(Debug, Default)]
pub struct Mapped {
    /// Machines and processes per machine.
    pub launch: LaunchShape,
    /// `deepspeed_config.deepspeed_config_file`, resolved beside the accelerate file.
    pub deepspeed_config_file: Option<PathBuf>,
}

/// Maps an accelerate document into the ferrotune document `out`.
pub fn map(
    doc: &Value,
    file: &Path,
    out: &mut Value,
    r: &mut Report,
) -> Result<Mapped, MigrateError> {
    let src = doc.as_object().expect("checked by the caller");
    let mut mapped = Mapped::default();
    let dtype = src
        .get("distributed_type")
        .map(show)
        .unwrap_or_else(|| "NO".into())
        .to_ascii_uppercase();
    let machines = match src.get("num_machines") {
        Some(v) if !v.is_null() => as_u64(v)
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad(file, "num_machines", "must be a whole number >= 1"))?
            as u32,
        _ => 1,
    };
    let procs = match src.get("num_processes") {
        Some(v) if !v.is_null() => as_u64(v)
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad(file, "num_processes", "must be a whole number >= 1"))?
            as u32,
        _ => 1,
    };
    for (key, v) in src {
        let k = key.as_str();
        if !KNOWN_KEYS.contains(&k) {
            r.unknown(file, k, Kind::Accelerate);
            continue;
        }
        match k {
            "distributed_type" => match dtype.as_str() {
                "NO" => r.ignore(file, k, "one process"),
                "MULTI_GPU" | "MULTI_CPU" => {
                    put(out, r, file, k, "distributed.strategy", json!("ddp"));
                    if dtype == "MULTI_CPU" {
                        super::set(out, "training.device", json!("cpu"));
                        super::set(out, "distributed.backend", json!("tcp"));
                        r.mapped.last_mut().expect("just pushed").to +=
                            ", training.device = cpu, distributed.backend = tcp";
                    }
                }
                "FSDP" => r.map(file, k, "distributed.strategy from fsdp_config"),
                "DEEPSPEED" => r.map(file, k, "distributed.strategy from deepspeed_config"),
                other => r.unsupported(
                    file,
                    k,
                    format!("`{other}`: ferrotune runs DDP, ZeRO-2 or ZeRO-3 style on CUDA or the CPU"),
                ),
            },
            "num_machines" => r.map(file, k, format!("launch: {machines} node(s)")),
            "num_processes" => {
                if procs % machines != 0 {
                    return Err(bad(
                        file,
                        k,
                        format!("{procs} processes cannot be split evenly over {machines} machines"),
                    ));
                }
                r.map(
                    file,
                    k,
                    format!("launch: {} process(es) per node (NPROC_PER_NODE)", procs / machines),
                );
            }
            "main_process_port" if !is_unset(v) => {
                let port = as_u64(v)
                    .filter(|p| (1..=65535).contains(p))
                    .ok_or_else(|| bad(file, k, "must be a port number"))?;
                mapped.launch.master_port = Some(port as u16);
                r.map(file, k, format!("launch: MASTER_PORT={port}"));
            }
            "main_process_ip" | "machine_rank" | "rdzv_backend" | "same_network" | "gpu_ids" => {
                r.ignore(
                    file,
                    k,
                    "set per process by the launcher (MASTER_ADDR, NODE_RANK, CUDA_VISIBLE_DEVICES)",
                )
            }
            "mixed_precision" => match show(v).to_ascii_lowercase().as_str() {
                "bf16" => put(out, r, file, k, "training.dtype", json!("bf16")),
                "no" | "" => r.ignore(
                    file,
                    k,
                    "the training config's precision is kept (training.dtype)",
                ),
                other => r.unsupported(
                    file,
                    k,
                    format!("`{other}` is not implemented: bf16 on CUDA, f32 on the CPU"),
                ),
            },
            "use_cpu" => {
                if as_bool(v) == Some(true) {
                    put(out, r, file, k, "training.device", json!("cpu"));
                } else {
                    r.ignore(file, k, "off");
                }
            }
            "fsdp_config" => {
                if dtype == "FSDP" {
                    let cfg = v.as_object().cloned().unwrap_or_default();
                    map_fsdp_config(&cfg, file, k, out, r)?;
                } else if !is_unset(v) {
                    r.ignore(file, k, format!("distributed_type is {dtype}, not FSDP"));
                }
            }
            "deepspeed_config" => {
                if dtype == "DEEPSPEED" {
                    let cfg = v.as_object().cloned().unwrap_or_default();
                    mapped.deepspeed_config_file = map_deepspeed_config(&cfg, file, out, r)?;
                } else if !is_unset(v) {
                    r.ignore(file, k, format!("distributed_type is {dtype}, not DEEPSPEED"));
                }
            }
            "compute_environment" => match show(v).as_str() {
                "LOCAL_MACHINE" | "" => r.ignore(file, k, "machines you launch on yourself"),
                other => r.unsupported(
                    file,
                    k,
                    format!("`{other}`: launch ferrotune on the machines yourself or with a TrainingJob"),
                ),
            },
            "downcast_bf16" | "debug" | "enable_cpu_affinity" | "main_training_function"
            | "dynamo_config" | "dynamo_backend" => {
                r.ignore(file, k, "a runtime setting with no effect on what is trained")
            }
            _ if is_unset(v) => r.ignore(file, k, "not set"),
            _ => r.unsupported(file, k, "ferrotune has no equivalent"),
        }
    }
    mapped.launch.nodes = machines;
    mapped.launch.procs_per_node = (procs / machines).max(1);
    if dtype == "FSDP" && !src.contains_key("fsdp_config") {
        put(
            out,
            r,
            file,
            "distributed_type",
            "distributed.strategy",
            json!("zero3"),
        );
    }
    Ok(mapped)
}

/// `fsdp_config` (accelerate's or Axolotl's) onto `distributed.strategy`.
pub fn map_fsdp_config(
    cfg: &Map<String, Value>,
    file: &Path,
    at: &str,
    out: &mut Value,
    r: &mut Report,
) -> Result<(), MigrateError> {
    let mut strategy = None;
    for (key, v) in cfg {
        let name = if key.starts_with("fsdp_") {
            key.clone()
        } else {
            format!("fsdp_{key}")
        };
        let k = format!("{at}.{key}");
        if !FSDP_KEYS.contains(&name.as_str()) {
            r.unknown(file, k, Kind::Accelerate);
            continue;
        }
        match name.as_str() {
            "fsdp_sharding_strategy" => {
                let (s, note) = sharding(v).ok_or_else(|| {
                    bad(
                        file,
                        &k,
                        "must be FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, HYBRID_SHARD, \
                         HYBRID_SHARD_ZERO2 (or 1 to 5)",
                    )
                })?;
                put(out, r, file, &k, "distributed.strategy", json!(s));
                if let Some(note) = note {
                    r.unsupported(file, k, note);
                }
                strategy = Some(s);
            }
            "fsdp_reshard_after_forward" => {
                if strategy.is_none() && !cfg.contains_key("fsdp_sharding_strategy") {
                    let s = if as_bool(v) == Some(false) {
                        "zero2"
                    } else {
                        "zero3"
                    };
                    put(out, r, file, &k, "distributed.strategy", json!(s));
                    strategy = Some(s);
                } else {
                    r.ignore(file, k, "fsdp_sharding_strategy decides");
                }
            }
            "fsdp_offload_params" => {
                if as_bool(v) == Some(true) {
                    r.unsupported(file, k, "CPU offload of parameters is not implemented");
                } else {
                    r.ignore(file, k, "off");
                }
            }
            "fsdp_auto_wrap_policy" | "fsdp_transformer_layer_cls_to_wrap" => r.ignore(
                file,
                k,
                "ferrotune shards and gathers per decoder block (transformer-based wrapping)",
            ),
            "fsdp_state_dict_type" => r.ignore(
                file,
                k,
                "ferrotune saves the full (unsharded) adapters or model",
            ),
            "fsdp_activation_checkpointing" => {
                if as_bool(v) == Some(true) {
                    put(
                        out,
                        r,
                        file,
                        &k,
                        "training.gradient_checkpointing",
                        json!(true),
                    );
                } else {
                    r.ignore(file, k, "off");
                }
            }
            _ => r.ignore(
                file,
                k,
                "a communication or loading detail with no effect on what is trained",
            ),
        }
    }
    if strategy.is_none() {
        put(out, r, file, at, "distributed.strategy", json!("zero3"));
        r.mapped.last_mut().expect("just pushed").to += " (FSDP's default FULL_SHARD)";
    }
    Ok(())
}

/// An FSDP sharding strategy: ferrotune's strategy and, for hybrid sharding, what differs.
fn sharding(v: &Value) -> Option<(&'static str, Option<&'static str>)> {
    let hybrid = "hybrid sharding (shard within a node, replicate across nodes) is not \
                  implemented: sharded across every process instead";
    let name = match as_u64(v) {
        Some(1) => "FULL_SHARD".to_string(),
        Some(2) => "SHARD_GRAD_OP".into(),
        Some(3) => "NO_SHARD".into(),
        Some(4) => "HYBRID_SHARD".into(),
        Some(5) => "HYBRID_SHARD_ZERO2".into(),
        _ => show(v).to_ascii_uppercase(),
    };
    Some(match name.as_str() {
        "FULL_SHARD" => ("zero3", None),
        "SHARD_GRAD_OP" => ("zero2", None),
        "NO_SHARD" => ("ddp", None),
        "HYBRID_SHARD" => ("zero3", Some(hybrid)),
        "HYBRID_SHARD_ZERO2" | "_HYBRID_SHARD_ZERO2" => ("zero2", Some(hybrid)),
        _ => return None,
    })
}

/// Axolotl's `fsdp: [full_shard, auto_wrap]`, `fsdp_config` and `fsdp_version` keys.
pub fn map_axolotl_fsdp(
    keys: &Map<String, Value>,
    file: &Path,
    out: &mut Value,
    r: &mut Report,
) -> Result<(), MigrateError> {
    let mut had_strategy = false;
    if let Some(list) = keys.get("fsdp") {
        let items: Vec<String> = match list {
            Value::Array(a) => a.iter().map(show).collect(),
            other => show(other).split_whitespace().map(String::from).collect(),
        };
        for item in items {
            let k = format!("fsdp: {item}");
            match item.as_str() {
                "full_shard" => {
                    put(out, r, file, &k, "distributed.strategy", json!("zero3"));
                    had_strategy = true;
                }
                "shard_grad_op" => {
                    put(out, r, file, &k, "distributed.strategy", json!("zero2"));
                    had_strategy = true;
                }
                "no_shard" => {
                    put(out, r, file, &k, "distributed.strategy", json!("ddp"));
                    had_strategy = true;
                }
                "auto_wrap" => r.ignore(file, k, "ferrotune shards per decoder block"),
                "offload" => r.unsupported(file, k, "CPU offload is not implemented"),
                other => r.unsupported(file, k, format!("`{other}` is not implemented")),
            }
        }
    }
    if let Some(v) = keys.get("fsdp_version") {
        r.ignore(
            file,
            "fsdp_version",
            format!("FSDP {}: the sharding level is what matters", show(v)),
        );
    }
    if let Some(cfg) = keys.get("fsdp_config").and_then(Value::as_object) {
        let names_strategy = cfg
            .keys()
            .any(|k| k.ends_with("sharding_strategy") || k.ends_with("reshard_after_forward"));
        let before = super::get(out, "distributed.strategy").cloned();
        let mut scratch = Report::default();
        map_fsdp_config(cfg, file, "fsdp_config", out, &mut scratch)?;
        if had_strategy && !names_strategy {
            // The `fsdp:` list decided the level; drop the FULL_SHARD default.
            if let Some(b) = before {
                super::set(out, "distributed.strategy", b);
            }
            scratch.mapped.retain(|m| m.key != "fsdp_config");
        }
        r.mapped.extend(scratch.mapped);
        r.ignored.extend(scratch.ignored);
        r.unsupported.extend(scratch.unsupported);
        r.unknown.extend(scratch.unknown.into_iter().map(|mut u| {
            u.tool = Kind::Axolotl;
            u
        }));
    }
    Ok(())
}

/// accelerate's `deepspeed_config` block; returns the JSON file it names, if any.
fn map_deepspeed_config(
    cfg: &Map<String, Value>,
    file: &Path,
    out: &mut Value,
    r: &mut Report,
) -> Result<Option<PathBuf>, MigrateError> {
    let mut json_file = None;
    for (key, v) in cfg {
        let k = format!("deepspeed_config.{key}");
        if !DEEPSPEED_KEYS.contains(&key.as_str()) {
            r.unknown(file, k, Kind::Accelerate);
            continue;
        }
        match key.as_str() {
            "deepspeed_config_file" if !is_unset(v) => {
                json_file = Some(PathBuf::from(show(v)));
            }
            "zero_stage" => {
                let stage = as_u64(v)
                    .filter(|s| *s <= 3)
                    .ok_or_else(|| bad(file, &k, "must be 0, 1, 2 or 3"))?;
                let s = super::deepspeed::strategy_for_stage(stage);
                put(out, r, file, &k, "distributed.strategy", json!(s));
            }
            "gradient_accumulation_steps" if !is_unset(v) && show(v) != "auto" => {
                let n = count(v, file, &k)?;
                put(
                    out,
                    r,
                    file,
                    &k,
                    "training.gradient_accumulation_steps",
                    json!(n),
                );
            }
            "gradient_clipping" if !is_unset(v) && show(v) != "auto" => {
                let f = super::as_f64(v).ok_or_else(|| bad(file, &k, "must be a number"))?;
                put(out, r, file, &k, "training.max_grad_norm", json!(f));
            }
            "offload_optimizer_device" | "offload_param_device" => {
                match show(v).to_ascii_lowercase().as_str() {
                    "none" | "" => r.ignore(file, k, "no offload"),
                    other => r.unsupported(
                        file,
                        k,
                        format!(
                            "offload to {other} is not implemented: everything stays on the GPU"
                        ),
                    ),
                }
            }
            "zero3_save_16bit_model" | "zero3_init_flag" => r.ignore(
                file,
                k,
                "ferrotune loads sharded and saves the full adapters or model",
            ),
            _ if is_unset(v) || show(v) == "auto" => r.ignore(file, k, "not set"),
            _ => r.ignore(
                file,
                k,
                "a launcher detail with no effect on what is trained",
            ),
        }
    }
    Ok(json_file)
}
