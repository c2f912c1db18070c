//! Axolotl's YAML config onto ferrotune's schema.
//!
//! Every top-level key is either mapped, recognised as needing nothing, reported as unsupported
//! with the reason, or reported as unknown to Axolotl (checked against [`KNOWN_KEYS`]).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{Kind, MigrateError, Report, as_bool, as_f64, bad, count, is_unset, put, set, show};
use crate::TargetModule;

/// Top-level keys of an Axolotl config, from the config reference in Axolotl's documentation.
pub const KNOWN_KEYS: &[&str] = &[
    // model
    "base_model",
    "base_model_ignore_patterns",
    "base_model_config",
    "revision_of_model",
    "tokenizer_config",
    "tokenizer_type",
    "tokenizer_use_fast",
    "tokenizer_legacy",
    "tokenizer_use_mistral_common",
    "tokenizer_save_jinja_files",
    "model_type",
    "model_config_type",
    "processor_type",
    "processor_config",
    "trust_remote_code",
    "resize_token_embeddings_to_32x",
    "shrink_embeddings",
    "embeddings_skip_upcast",
    "random_init_weights",
    "is_falcon_derived_model",
    "is_llama_derived_model",
    "is_qwen_derived_model",
    "is_mistral_derived_model",
    "model_config",
    "overrides_of_model_config",
    "overrides_of_model_kwargs",
    "rope_scaling",
    // quantisation and precision
    "bnb_config_kwargs",
    "gptq",
    "gptq_groupsize",
    "gptq_model_v1",
    "load_in_8bit",
    "load_in_4bit",
    "bf16",
    "fp16",
    "tf32",
    "bfloat16",
    "float16",
    "float32",
    "fp8",
    "gpu_memory_limit",
    "low_cpu_mem_usage",
    "device_map",
    "max_memory",
    // data
    "chat_template",
    "chat_template_jinja",
    "chat_template_kwargs",
    "default_system_message",
    "eot_tokens",
    "datasets",
    "shuffle_merged_datasets",
    "shuffle_before_merging_datasets",
    "dataset_exact_deduplication",
    "test_datasets",
    "rl",
    "trl",
    "reward_model",
    "process_reward_model",
    "dpo_use_weighting",
    "dpo_beta",
    "orpo_alpha",
    "kto_desirable_weight",
    "kto_undesirable_weight",
    "dataset_prepared_path",
    "push_dataset_to_hub",
    "dataset_processes",
    "dataset_num_proc",
    "dataset_keep_in_memory",
    "skip_prepare_dataset",
    "streaming",
    "hub_model_id",
    "hub_strategy",
    "hf_use_auth_token",
    "val_set_size",
    "dataset_shard_num",
    "dataset_shard_idx",
    "sequence_len",
    "excess_length_strategy",
    "pad_to_sequence_len",
    "sample_packing",
    "eval_sample_packing",
    "sample_packing_eff_est",
    "total_num_tokens",
    "sample_packing_group_size",
    "sample_packing_bin_size",
    "sample_packing_sequentially",
    "multipack_real_batches",
    "batch_flattening",
    "pretraining_dataset",
    "pretraining_sample_concatenation",
    "curriculum_sampling",
    "max_packed_sequence_len",
    "dataloader_pin_memory",
    "dataloader_num_workers",
    "dataloader_prefetch_factor",
    "dataloader_drop_last",
    // adapters
    "adapter",
    "lora_model_dir",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "lora_target_linear",
    "lora_target_parameters",
    "peft_layers_to_transform",
    "peft_layers_pattern",
    "lora_modules_to_save",
    "lora_fan_in_fan_out",
    "peft_use_dora",
    "peft_use_rslora",
    "peft_layer_replication",
    "peft",
    "lora_on_cpu",
    "lora_mlp_kernel",
    "lora_qkv_kernel",
    "lora_o_kernel",
    "relora_steps",
    "relora_warmup_steps",
    "relora_anneal_steps",
    "relora_prune_ratio",
    "relora_cpu_offload",
    "unfrozen_parameters",
    // logging backends
    "wandb_mode",
    "wandb_project",
    "wandb_entity",
    "wandb_watch",
    "wandb_name",
    "wandb_run_id",
    "wandb_log_model",
    "mlflow_tracking_uri",
    "mlflow_experiment_name",
    "mlflow_run_name",
    "hf_mlflow_log_artifacts",
    "use_comet",
    "comet_api_key",
    "comet_workspace",
    "comet_project_name",
    "comet_experiment_key",
    "comet_mode",
    "comet_online",
    "comet_experiment_config",
    "use_tensorboard",
    "include_tokens_per_second",
    // training
    "output_dir",
    "torch_compile",
    "torch_compile_backend",
    "torch_compile_mode",
    "gradient_accumulation_steps",
    "micro_batch_size",
    "eval_batch_size",
    "num_epochs",
    "warmup_steps",
    "warmup_ratio",
    "learning_rate",
    "lr_quadratic_warmup",
    "logging_steps",
    "eval_steps",
    "evals_per_epoch",
    "eval_strategy",
    "evaluation_strategy",
    "save_strategy",
    "save_steps",
    "saves_per_epoch",
    "save_total_limit",
    "save_only_model",
    "save_safetensors",
    "save_first_step",
    "max_steps",
    "eval_table_size",
    "eval_max_new_tokens",
    "do_causal_lm_eval",
    "eval_causal_lm_metrics",
    "profiler_steps",
    "loss_watchdog_threshold",
    "loss_watchdog_patience",
    "train_on_inputs",
    "group_by_length",
    "gradient_checkpointing",
    "gradient_checkpointing_kwargs",
    "activation_offloading",
    "early_stopping_patience",
    "lr_scheduler",
    "lr_scheduler_kwargs",
    "cosine_min_lr_ratio",
    "cosine_constant_lr_ratio",
    "lr_div_factor",
    "optimizer",
    "optim_args",
    "optim_target_modules",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_beta3",
    "adam_epsilon",
    "adam_epsilon2",
    "max_grad_norm",
    "neftune_noise_alpha",
    "noisy_embedding_alpha",
    "seed",
    "strict",
    "debug",
    "debug_num_examples",
    "resume_from_checkpoint",
    "auto_resume_from_checkpoints",
    "local_rank",
    "special_tokens",
    "tokens",
    "added_tokens_overrides",
    "fix_untrained_tokens",
    // kernels
    "flash_optimum",
    "xformers_attention",
    "flash_attention",
    "flash_attn_cross_entropy",
    "flash_attn_rms_norm",
    "flash_attn_fuse_qkv",
    "flash_attn_fuse_mlp",
    "sdp_attention",
    "s2_attention",
    "eager_attention",
    "flex_attention",
    "attn_implementation",
    "landmark_attention",
    "xpos_rope",
    "plugins",
    "cut_cross_entropy",
    "liger_rope",
    "liger_rms_norm",
    "liger_glu_activation",
    "liger_layer_norm",
    "liger_fused_linear_cross_entropy",
    "unsloth_cross_entropy_loss",
    "unsloth_lora_mlp",
    "unsloth_lora_qkv",
    "unsloth_lora_o",
    "unsloth_rms_norm",
    "unsloth_rope",
    // distributed
    "fsdp",
    "fsdp_config",
    "fsdp_version",
    "deepspeed",
    "ddp_timeout",
    "ddp_bucket_cap_mb",
    "ddp_broadcast_buffers",
    "ddp_find_unused_parameters",
    "torchdistx_path",
    "use_ray",
    "ray_num_workers",
    "ray_run_name",
    "sequence_parallel_degree",
    "context_parallel_size",
    "tensor_parallel_size",
    "dp_shard_size",
    "dp_replicate_size",
    "heads_k_stride",
    "ring_attn_func",
];

/// Keys of one `datasets:` / `test_datasets:` entry.
pub const DATASET_KEYS: &[&str] = &[
    "path",
    "split",
    "type",
    "ds_type",
    "data_files",
    "name",
    "revision",
    "trust_remote_code",
    "shards",
    "shards_idx",
    "preprocess_shards",
    "conversation",
    "chat_template",
    "chat_template_jinja",
    "field_messages",
    "message_field_role",
    "message_field_content",
    "message_property_mappings",
    "field_system",
    "field_human",
    "field_model",
    "field_tools",
    "roles",
    "roles_to_train",
    "train_on_eos",
    "train_on_eot",
    "drop_system_message",
    "message_field_training",
    "message_field_training_detail",
    "split_thinking",
    "field_thinking",
    "field",
    "train_on_split",
    "temperature",
    "logprobs_field",
];

/// Keys of a custom `type:` mapping in a dataset entry.
pub const CUSTOM_TYPE_KEYS: &[&str] = &[
    "system_prompt",
    "system_format",
    "field_system",
    "field_instruction",
    "field_input",
    "field_output",
    "format",
    "no_input_format",
    "field",
];

/// Alpaca's instruction-only layout, with ferrotune's `{dialogue}` where the instruction goes.
pub const ALPACA_USER_TEMPLATE: &str = "Below is an instruction that describes a task. Write a \
response that appropriately completes the request.\n\n### Instruction:\n{dialogue}\n\n### Response:\n";

/// An Axolotl config mapped onto a ferrotune document (not yet validated).
#[derive(Debug)]
pub struct Mapped {
    /// The ferrotune config document.
    pub config: Value,
    /// The DeepSpeed file named by `deepspeed:`.
    pub deepspeed: Option<PathBuf>,
}

const NO_KERNEL_CHOICE: &str = "an attention or kernel implementation choice: ferrotune uses its own kernels, with the same result";

/// Maps an Axolotl document; `file` names it in the report and in errors.
pub fn map(doc: &Value, file: &Path, r: &mut Report) -> Result<Mapped, MigrateError> {
    let src = doc.as_object().expect("checked by the caller");
    let mut out = json!({});
    let mut deepspeed = None;
    // The training mode depends on three keys together.
    let adapter = src.get("adapter").filter(|v| !is_unset(v));
    let in4 = src.get("load_in_4bit").and_then(as_bool).unwrap_or(false);
    let in8 = src.get("load_in_8bit").and_then(as_bool).unwrap_or(false);
    let mut fsdp_keys: Map<String, Value> = Map::new();

    for (key, v) in src {
        let k = key.as_str();
        if !KNOWN_KEYS.contains(&k) {
            r.unknown(file, k, Kind::Axolotl);
            continue;
        }
        match k {
            "base_model" => {
                let s = str_of(v, file, k)?;
                let local = looks_local(&s);
                let to = if local { "model.path" } else { "model.hub" };
                put(&mut out, r, file, k, to, json!(s));
            }
            "revision_of_model" if !is_unset(v) => {
                put(&mut out, r, file, k, "model.revision", json!(show(v)));
            }
            "base_model_config" | "tokenizer_config" if !is_unset(v) => {
                if src.get("base_model") == Some(v) {
                    r.ignore(file, k, "the same as base_model");
                } else {
                    r.unsupported(
                        file,
                        k,
                        format!(
                            "ferrotune reads the model config and the tokenizer from the model \
                             itself (config.json / tokenizer.json beside the weights, or the \
                             GGUF); a separate `{}` cannot be named",
                            show(v)
                        ),
                    );
                }
            }
            "model_type" | "tokenizer_type" | "model_config_type" | "tokenizer_use_fast"
            | "tokenizer_legacy" | "is_llama_derived_model" => r.ignore(
                file,
                k,
                "ferrotune always builds a Llama-architecture model and reads tokenizer.json",
            ),
            "adapter" => match adapter.map(show).as_deref() {
                None => r.ignore(file, k, "no adapter: full fine-tuning"),
                Some("lora") if in4 => r.map(file, k, "training.mode = qlora (with load_in_4bit)"),
                Some("lora") => r.map(file, k, "training.mode = lora"),
                Some("qlora") => r.map(file, k, "training.mode = qlora"),
                Some(other) => r.unsupported(
                    file,
                    k,
                    format!("adapter `{other}`: ferrotune trains lora and qlora adapters only; trained as lora"),
                ),
            },
            "load_in_4bit" => {
                if !in4 {
                    r.ignore(file, k, "off");
                } else if adapter.is_some() {
                    r.map(file, k, "training.mode = qlora (NF4 base, double quantisation)");
                } else {
                    r.unsupported(
                        file,
                        k,
                        "a 4-bit base needs an adapter (adapter: qlora); trained as full fine-tuning",
                    );
                }
            }
            "load_in_8bit" => {
                if !in8 {
                    r.ignore(file, k, "off");
                } else if in4 {
                    r.ignore(file, k, "load_in_4bit wins");
                } else {
                    r.unsupported(
                        file,
                        k,
                        "8-bit (LLM.int8) base weights are not implemented: trained as lora on a \
                         full-precision base (or use adapter: qlora for a 4-bit NF4 base)",
                    );
                }
            }
            "bnb_config_kwargs" => map_bnb(v, file, r),
            "gptq" | "gptq_groupsize" | "gptq_model_v1" if !is_unset(v) => r.unsupported(
                file,
                k,
                "GPTQ-quantised bases are not read; ferrotune quantises to NF4 itself (qlora)",
            ),
            "lora_r" if !is_unset(v) => {
                let n = count(v, file, k)?;
                put(&mut out, r, file, k, "lora.r", json!(n));
            }
            "lora_alpha" if !is_unset(v) => {
                let n = num(v, file, k)?;
                put(&mut out, r, file, k, "lora.alpha", json!(n));
            }
            "lora_dropout" if !v.is_null() => {
                let n = num(v, file, k)?;
                put(&mut out, r, file, k, "lora.dropout", json!(n));
            }
            "lora_target_modules" if !is_unset(v) => {
                let linear = src.get("lora_target_linear").and_then(as_bool) == Some(true);
                if linear {
                    r.ignore(file, k, "lora_target_linear adds every projection");
                } else {
                    let targets = target_modules(v, file, k, r)?;
                    if !targets.is_empty() {
                        put(&mut out, r, file, k, "lora.target_modules", json!(targets));
                    }
                }
            }
            "lora_target_linear" => {
                if as_bool(v) == Some(true) {
                    let all: Vec<&str> = TargetModule::ALL.iter().map(|t| t.name()).collect();
                    put(&mut out, r, file, k, "lora.target_modules", json!(all));
                } else {
                    r.ignore(file, k, "off");
                }
            }
            "lora_fan_in_fan_out" | "peft_use_dora" | "peft_use_rslora" if !is_unset(v) => {
                r.unsupported(
                    file,
                    k,
                    "only plain LoRA (alpha / r scaling, PEFT's initialisation) is implemented",
                )
            }
            "lora_modules_to_save" if !is_unset(v) => r.unsupported(
                file,
                k,
                "ferrotune trains adapters only; embeddings and lm_head stay frozen",
            ),
            "lora_model_dir" if !is_unset(v) => r.unsupported(
                file,
                k,
                "starting from an existing adapter is not supported: new adapters are initialised \
                 (a run resumes from its own checkpoints in output.dir)",
            ),
            "datasets" => map_datasets(v, file, k, &mut out, r, false)?,
            "test_datasets" if !is_unset(v) => map_datasets(v, file, k, &mut out, r, true)?,
            "val_set_size" if !is_unset(v) => {
                let f = num(v, file, k)?;
                if src.get("test_datasets").is_some_and(|t| !is_unset(t)) {
                    r.ignore(file, k, "test_datasets is used instead");
                } else if (0.0..1.0).contains(&f) {
                    put(&mut out, r, file, k, "data.eval_fraction", json!(f));
                } else {
                    r.unsupported(
                        file,
                        k,
                        format!("{f}: ferrotune holds out a fraction in [0, 1) of the rows"),
                    );
                }
            }
            "dataset_prepared_path" | "dataset_processes" | "dataset_num_proc"
            | "dataset_keep_in_memory" | "push_dataset_to_hub" => r.ignore(
                file,
                k,
                "ferrotune tokenises the rows in memory when a run starts",
            ),
            "chat_template" if !is_unset(v) => {
                let name = show(v);
                if name == "tokenizer_default" {
                    r.ignore(file, k, "the model's own chat template is ferrotune's default");
                } else if name == "jinja" {
                    if src.get("chat_template_jinja").is_none() {
                        r.unsupported(file, k, "`jinja` needs chat_template_jinja");
                    } else {
                        r.ignore(file, k, "chat_template_jinja holds the template");
                    }
                } else {
                    r.unsupported(
                        file,
                        k,
                        format!(
                            "Axolotl's built-in template `{name}` is not shipped: ferrotune uses \
                             the model's own template, or paste one into prompt.chat_template"
                        ),
                    );
                }
            }
            "chat_template_jinja" if !is_unset(v) => {
                put(&mut out, r, file, k, "prompt.chat_template", json!(show(v)));
            }
            "default_system_message" if !is_unset(v) => {
                put(&mut out, r, file, k, "prompt.system", json!(show(v)));
            }
            "sequence_len" if !is_unset(v) => {
                let n = count(v, file, k)?;
                put(&mut out, r, file, k, "training.max_seq_length", json!(n));
            }
            "excess_length_strategy" if !is_unset(v) => match show(v).as_str() {
                "drop" => put(&mut out, r, file, k, "training.truncation", json!("drop")),
                "truncate" => {
                    put(&mut out, r, file, k, "training.truncation", json!("truncate_input"));
                    r.mapped.last_mut().expect("just pushed").to +=
                        " (ferrotune shortens the input, never the target)";
                }
                other => r.unsupported(file, k, format!("`{other}`: ferrotune drops or truncates")),
            },
            "pad_to_sequence_len" => r.ignore(
                file,
                k,
                "ferrotune pads each batch to its longest sample; padding does not change the loss",
            ),
            "sample_packing" | "eval_sample_packing" if !is_unset(v) => r.unsupported(
                file,
                k,
                "samples are not packed: each is its own sequence in a padded batch",
            ),
            "micro_batch_size" if !is_unset(v) => {
                put_count(&mut out, r, file, k, "training.micro_batch_size", v)?
            }
            "gradient_accumulation_steps" if !is_unset(v) => {
                put_count(&mut out, r, file, k, "training.gradient_accumulation_steps", v)?
            }
            "num_epochs" if !is_unset(v) => {
                let f = num(v, file, k)?;
                let whole = f.ceil().max(1.0) as u32;
                put(&mut out, r, file, k, "training.epochs", json!(whole));
                if f.fract() != 0.0 {
                    r.unsupported(
                        file,
                        k,
                        format!("{f}: ferrotune counts whole epochs; rounded up to {whole} (use max_steps to stop earlier)"),
                    );
                }
            }
            "max_steps" if !is_unset(v) => {
                put_count(&mut out, r, file, k, "training.max_steps", v)?
            }
            "learning_rate" if !is_unset(v) => {
                let f = num(v, file, k)?;
                put(&mut out, r, file, k, "training.learning_rate", json!(f));
            }
            "lr_scheduler" if !is_unset(v) => match show(v).as_str() {
                s @ ("cosine" | "linear" | "constant") => {
                    put(&mut out, r, file, k, "training.lr_scheduler", json!(s))
                }
                "constant_with_warmup" => {
                    put(&mut out, r, file, k, "training.lr_scheduler", json!("constant"))
                }
                other => r.unsupported(
                    file,
                    k,
                    format!("`{other}`: ferrotune schedules cosine, linear or constant (after a linear warm-up); cosine is used"),
                ),
            },
            "warmup_steps" if !is_unset(v) => {
                put_count(&mut out, r, file, k, "training.warmup_steps", v)?
            }
            "warmup_ratio" if !is_unset(v) => {
                if src.get("warmup_steps").is_some_and(|w| !is_unset(w)) {
                    r.unsupported(file, k, "warmup_steps is set too; warmup_steps is used");
                } else {
                    let f = num(v, file, k)?;
                    put(&mut out, r, file, k, "training.warmup_ratio", json!(f));
                }
            }
            "optimizer" if !is_unset(v) => map_optimizer(&show(v), file, r),
            "weight_decay" if !v.is_null() => {
                let f = num(v, file, k)?;
                put(&mut out, r, file, k, "training.weight_decay", json!(f));
            }
            "max_grad_norm" if !v.is_null() => {
                let f = num(v, file, k)?;
                put(&mut out, r, file, k, "training.max_grad_norm", json!(f));
            }
            "adam_beta1" | "adam_beta2" | "adam_epsilon" if !v.is_null() => {
                let f = num(v, file, k)?;
                put(&mut out, r, file, k, &format!("training.{k}"), json!(f));
            }
            "seed" if !v.is_null() => {
                let n = count(v, file, k)?;
                put(&mut out, r, file, k, "training.seed", json!(n));
                set(&mut out, "data.shuffle_seed", json!(n));
                r.mapped.last_mut().expect("just pushed").to += " and data.shuffle_seed";
            }
            "bf16" if !v.is_null() => match (as_bool(v), show(v).as_str()) {
                (Some(true), _) => put(&mut out, r, file, k, "training.dtype", json!("bf16")),
                (_, "auto") => put(&mut out, r, file, k, "training.dtype", json!("auto")),
                (Some(false), _) => {
                    if src.get("fp16").and_then(as_bool) != Some(true) {
                        put(&mut out, r, file, k, "training.dtype", json!("f32"));
                    } else {
                        r.ignore(file, k, "off");
                    }
                }
                _ => return Err(bad(file, k, "must be true, false or auto")),
            },
            "bfloat16" if as_bool(v) == Some(true) => {
                put(&mut out, r, file, k, "training.dtype", json!("bf16"))
            }
            "fp16" | "float16" if as_bool(v) == Some(true) => r.unsupported(
                file,
                k,
                "fp16 is not implemented: bf16 on CUDA (dtype auto), f32 on the CPU",
            ),
            "tf32" => r.ignore(file, k, "a CUDA matmul setting; it does not change the config"),
            "gradient_checkpointing" if !v.is_null() => match as_bool(v) {
                Some(b) => put(&mut out, r, file, k, "training.gradient_checkpointing", json!(b)),
                None => {
                    put(&mut out, r, file, k, "training.gradient_checkpointing", json!(true));
                    r.unsupported(
                        file,
                        k,
                        format!("`{}`: ferrotune recomputes blocks; nothing is offloaded", show(v)),
                    );
                }
            },
            "train_on_inputs" => {
                if as_bool(v) == Some(true) {
                    r.unsupported(
                        file,
                        k,
                        "ferrotune always masks the prompt: the loss is on the target and its \
                         end-of-turn token only",
                    );
                } else {
                    r.ignore(file, k, "loss only on the target: ferrotune's behaviour");
                }
            }
            "special_tokens" | "tokens" | "added_tokens_overrides" if !is_unset(v) => {
                r.unsupported(
                    file,
                    k,
                    "ferrotune keeps the tokenizer's own tokens (padding uses EOS and is masked \
                     out); tokens cannot be added or replaced",
                )
            }
            "output_dir" if !is_unset(v) => {
                put(&mut out, r, file, k, "output.dir", json!(show(v)));
            }
            "save_steps" if !is_unset(v) => {
                put_count(&mut out, r, file, k, "training.save_steps", v)?
            }
            "save_total_limit" if !is_unset(v) => {
                put_count(&mut out, r, file, k, "training.save_total_limit", v)?
            }
            "logging_steps" if !is_unset(v) => {
                put_count(&mut out, r, file, k, "training.logging_steps", v)?
            }
            "eval_max_new_tokens" if !is_unset(v) => {
                put_count(&mut out, r, file, k, "eval.max_new_tokens", v)?
            }
            "saves_per_epoch" if !is_unset(v) => r.unsupported(
                file,
                k,
                "ferrotune checkpoints every save_steps optimizer steps",
            ),
            "eval_steps" | "evals_per_epoch" | "eval_strategy" | "evaluation_strategy"
            | "eval_batch_size" | "eval_table_size" | "do_causal_lm_eval"
            | "eval_causal_lm_metrics"
                if !is_unset(v) =>
            {
                r.unsupported(
                    file,
                    k,
                    "no evaluation during training: ferrotune generates and scores ROUGE after \
                     training (eval.after_training) on eval.num_samples rows",
                )
            }
            "resume_from_checkpoint" if !is_unset(v) => r.unsupported(
                file,
                k,
                "ferrotune resumes from the newest checkpoint in output.dir by itself; a \
                 checkpoint from another tool cannot be read",
            ),
            "auto_resume_from_checkpoints" if !v.is_null() => {
                let b = as_bool(v).ok_or_else(|| bad(file, k, "must be true or false"))?;
                put(&mut out, r, file, k, "output.resume", json!(b));
            }
            "strict" => r.ignore(file, k, "ferrotune's own checks are always strict"),
            "local_rank" | "debug" | "debug_num_examples" | "low_cpu_mem_usage"
            | "gpu_memory_limit" | "device_map" | "max_memory" | "dataloader_pin_memory"
            | "dataloader_num_workers" | "dataloader_prefetch_factor"
            | "include_tokens_per_second" | "ddp_find_unused_parameters"
            | "ddp_broadcast_buffers" | "torchdistx_path" | "trust_remote_code" => r.ignore(
                file,
                k,
                "a runtime setting with no effect on what is trained",
            ),
            "flash_optimum" | "xformers_attention" | "flash_attention" | "flash_attn_cross_entropy"
            | "flash_attn_rms_norm" | "flash_attn_fuse_qkv" | "flash_attn_fuse_mlp"
            | "sdp_attention" | "eager_attention" | "flex_attention" | "attn_implementation"
            | "torch_compile" | "torch_compile_backend" | "torch_compile_mode"
            | "cut_cross_entropy" | "lora_mlp_kernel" | "lora_qkv_kernel" | "lora_o_kernel" => {
                r.ignore(file, k, NO_KERNEL_CHOICE)
            }
            k if (k.starts_with("liger_") || k.starts_with("unsloth_")) => {
                r.ignore(file, k, NO_KERNEL_CHOICE)
            }
            "ddp_timeout" if !is_unset(v) => {
                put_count(&mut out, r, file, k, "distributed.timeout_seconds", v)?
            }
            "ddp_bucket_cap_mb" if !is_unset(v) => {
                let f = num(v, file, k)?;
                put(&mut out, r, file, k, "distributed.bucket_size_mb", json!(f));
            }
            "deepspeed" if !is_unset(v) => {
                deepspeed = Some(PathBuf::from(show(v)));
            }
            "fsdp" | "fsdp_config" | "fsdp_version" if !is_unset(v) => {
                fsdp_keys.insert(k.to_string(), v.clone());
            }
            k if k.starts_with("wandb_")
                || k.starts_with("mlflow_")
                || k.starts_with("comet_")
                || matches!(k, "use_comet" | "use_tensorboard" | "hf_mlflow_log_artifacts") =>
            {
                if is_unset(v) {
                    r.ignore(file, k, "not set");
                } else {
                    r.unsupported(
                        file,
                        k,
                        "no experiment tracker: ferrotune writes metrics.jsonl and \
                         `ferrotune report` draws it",
                    );
                }
            }
            "hub_model_id" | "hub_strategy" if !is_unset(v) => r.unsupported(
                file,
                k,
                "ferrotune writes the adapters or model to output.dir; it does not push to the Hub",
            ),
            _ if is_unset(v) => r.ignore(file, k, "not set"),
            _ => r.unsupported(file, k, "ferrotune has no equivalent"),
        }
    }

    // The mode, from adapter + load_in_4bit.
    let mode = match adapter.map(show).as_deref() {
        None => "full",
        Some("qlora") => "qlora",
        Some(_) if in4 => "qlora",
        Some(_) => "lora",
    };
    set(&mut out, "training.mode", json!(mode));
    if !fsdp_keys.is_empty() {
        super::accelerate::map_axolotl_fsdp(&fsdp_keys, file, &mut out, r)?;
    }
    Ok(Mapped {
        config: out,
        deepspeed,
    })
}

/// Whether a base_model value names a local file or directory rather than a Hub repo id.
fn looks_local(s: &str) -> bool {
    s.starts_with('/')
        || s.starts_with('.')
        || s.starts_with('~')
        || s.starts_with('$')
        || s.ends_with(".gguf")
        || s.split('/').count() != 2
        || Path::new(s).exists()
}

fn str_of(v: &Value, file: &Path, key: &str) -> Result<String, MigrateError> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(bad(file, key, "must be a model path or Hub repo id")),
    }
}

fn num(v: &Value, file: &Path, key: &str) -> Result<f64, MigrateError> {
    as_f64(v).ok_or_else(|| bad(file, key, format!("must be a number, got {}", show(v))))
}

fn put_count(
    out: &mut Value,
    r: &mut Report,
    file: &Path,
    key: &str,
    to: &str,
    v: &Value,
) -> Result<(), MigrateError> {
    let n = count(v, file, key)?;
    put(out, r, file, key, to, json!(n));
    Ok(())
}

fn map_bnb(v: &Value, file: &Path, r: &mut Report) {
    let Some(map) = v.as_object() else {
        r.ignore(file, "bnb_config_kwargs", "not set");
        return;
    };
    for (k, v) in map {
        let key = format!("bnb_config_kwargs.{k}");
        let s = show(v);
        match k.as_str() {
            "bnb_4bit_quant_type" if s == "nf4" => r.ignore(file, key, "ferrotune's qlora is NF4"),
            "bnb_4bit_quant_type" => {
                r.unsupported(file, key, format!("`{s}`: only NF4 is implemented"))
            }
            "bnb_4bit_use_double_quant" if as_bool(v) == Some(true) => r.ignore(
                file,
                key,
                "ferrotune always double-quantises the NF4 scales",
            ),
            "bnb_4bit_use_double_quant" => r.unsupported(
                file,
                key,
                "ferrotune always double-quantises the NF4 scales",
            ),
            "bnb_4bit_compute_dtype" => r.ignore(
                file,
                key,
                "the NF4 base computes in training.dtype (bf16 on CUDA, f32 on the CPU)",
            ),
            "llm_int8_has_fp16_weight" | "llm_int8_threshold" => {
                r.ignore(file, key, "an 8-bit setting; ferrotune has no 8-bit base")
            }
            "bnb_4bit_quant_storage" => r.ignore(file, key, "a storage layout choice"),
            _ => r.unsupported(file, key, "ferrotune has no equivalent"),
        }
    }
}

fn map_optimizer(name: &str, file: &Path, r: &mut Report) {
    let key = "optimizer";
    match name {
        "adamw_torch" | "adamw_torch_fused" | "adamw_hf" | "adamw_apex_fused" | "adamw"
        | "paged_adamw_32bit" | "adamw_torch_4bit" | "adam" => r.map(
            file,
            key,
            "AdamW with f32 state (training.adam_beta1/2, adam_epsilon)",
        ),
        "adamw_bnb_8bit" | "paged_adamw_8bit" | "adamw_8bit" | "bnb_adamw_8bit" | "paged_adamw"
        | "ademamix_8bit" => r.unsupported(
            file,
            key,
            format!(
                "`{name}`: 8-bit / paged optimizer state is not implemented; AdamW with f32 \
                 state is used (the same update, more memory)"
            ),
        ),
        other => r.unsupported(
            file,
            key,
            format!("`{other}`: ferrotune's optimizer is AdamW; AdamW is used"),
        ),
    }
}

fn target_modules(
    v: &Value,
    file: &Path,
    key: &str,
    r: &mut Report,
) -> Result<Vec<&'static str>, MigrateError> {
    let names: Vec<String> = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(show).collect(),
        _ => return Err(bad(file, key, "must be a list of module names")),
    };
    let mut out = Vec::new();
    let mut left = Vec::new();
    for n in &names {
        let leaf = n.rsplit('.').next().unwrap_or(n);
        match TargetModule::ALL.iter().find(|t| t.name() == leaf) {
            Some(t) if !out.contains(&t.name()) => out.push(t.name()),
            Some(_) => {}
            None => left.push(n.clone()),
        }
    }
    if !left.is_empty() {
        r.unsupported(
            file,
            key,
            format!(
                "{}: ferrotune puts adapters on the decoder projections only ({})",
                left.join(", "),
                TargetModule::ALL.map(|t| t.name()).join(", ")
            ),
        );
    }
    Ok(out)
}

/// Maps the first entry of `datasets` (or `test_datasets`) onto `data`, reporting the rest.
fn map_datasets(
    v: &Value,
    file: &Path,
    key: &str,
    out: &mut Value,
    r: &mut Report,
    eval: bool,
) -> Result<(), MigrateError> {
    let entries: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![v.clone()],
        _ => {
            return Err(bad(
                file,
                key,
                "must be a list of datasets, each with a path",
            ));
        }
    };
    let Some(first) = entries.first() else {
        return Err(bad(file, key, "must list at least one dataset"));
    };
    for (i, _) in entries.iter().enumerate().skip(1) {
        r.unsupported(
            file,
            format!("{key}[{i}]"),
            format!(
                "ferrotune reads one {} file; only {key}[0] is used (concatenate the files)",
                if eval { "evaluation" } else { "training" }
            ),
        );
    }
    let at = |k: &str| format!("{key}[0].{k}");
    let Some(entry) = first.as_object() else {
        return Err(bad(
            file,
            &format!("{key}[0]"),
            "must be a mapping with a path",
        ));
    };
    let to = if eval { "data.eval" } else { "data.train" };
    for k in entry.keys() {
        if !DATASET_KEYS.contains(&k.as_str()) {
            r.unknown(file, at(k), Kind::Axolotl);
        }
    }
    // The file: `data_files` (with ds_type json / parquet) or a local `path`.
    let path = entry.get("path").map(show).unwrap_or_default();
    let data_file = match entry.get("data_files") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(a)) => {
            if a.len() > 1 {
                r.unsupported(
                    file,
                    at("data_files"),
                    "ferrotune reads one file; only the first is used",
                );
            }
            a.first().map(show)
        }
        _ => None,
    };
    match (&data_file, path.is_empty()) {
        (Some(f), _) => {
            put(out, r, file, &at("data_files"), to, json!(f));
            if !path.is_empty() {
                r.ignore(file, at("path"), "data_files names the file");
            }
        }
        (None, true) => return Err(bad(file, &at("path"), "must name the dataset")),
        (None, false) => {
            let local = Path::new(&path)
                .extension()
                .is_some_and(|e| matches!(e.to_str(), Some("jsonl" | "json" | "parquet")));
            put(out, r, file, &at("path"), to, json!(path));
            if !local && !Path::new(&path).is_file() {
                r.unsupported(
                    file,
                    at("path"),
                    format!(
                        "`{path}` looks like a Hub dataset: ferrotune reads local .jsonl, .json \
                         or .parquet files (download it and point path at the file)"
                    ),
                );
            }
        }
    }
    for (k, v) in entry {
        match k.as_str() {
            "path" | "data_files" | "type" => {}
            "ds_type" => match show(v).as_str() {
                f @ ("json" | "parquet") => {
                    if !eval {
                        let fmt = if f == "json" { "auto" } else { "parquet" };
                        put(out, r, file, &at(k), "data.format", json!(fmt));
                    } else {
                        r.ignore(file, at(k), "data.format is shared with the training file");
                    }
                }
                other => r.unsupported(
                    file,
                    at(k),
                    format!("`{other}`: ferrotune reads JSON lines, JSON and Parquet"),
                ),
            },
            "split" => {
                if show(v) == "train" || eval && show(v) == "test" {
                    r.ignore(file, at(k), "a local file is read whole");
                } else {
                    r.unsupported(
                        file,
                        at(k),
                        format!(
                            "split `{}`: a local file has no splits; it is read whole",
                            show(v)
                        ),
                    );
                }
            }
            "name" | "revision" | "trust_remote_code" | "shards" | "shards_idx"
            | "preprocess_shards"
                if !is_unset(v) =>
            {
                r.unsupported(
                    file,
                    at(k),
                    "a Hub dataset setting; ferrotune reads one local file",
                )
            }
            k2 if DATASET_KEYS.contains(&k2) && !is_unset(v) => {
                if entry.get("type").map(show).as_deref() == Some("chat_template") {
                    r.unsupported(file, at(k2), "part of a chat_template dataset (not read)");
                } else {
                    r.unsupported(file, at(k2), "ferrotune has no equivalent");
                }
            }
            k2 if DATASET_KEYS.contains(&k2) => r.ignore(file, at(k2), "not set"),
            _ => {} // reported as unknown above
        }
    }
    if eval {
        if entry.get("type").is_some() {
            r.ignore(
                file,
                at("type"),
                "the evaluation file uses the training fields",
            );
        }
        return Ok(());
    }
    map_type(entry.get("type"), file, &at("type"), out, r);
    Ok(())
}

/// A dataset `type:` onto input_field / target_field / prompt.
fn map_type(t: Option<&Value>, file: &Path, key: &str, out: &mut Value, r: &mut Report) {
    let cannot = "ferrotune trains on rows of one input text and one target text, with the loss \
                  on the target only";
    match t {
        None | Some(Value::Null) => r.unsupported(
            file,
            key,
            format!("no type: {cannot}; set data.input_field and data.target_field"),
        ),
        Some(Value::String(s)) => match s.as_str() {
            "alpaca" | "alpaca_chat" | "alpaca:chat" => {
                put(out, r, file, key, "data.input_field", json!("instruction"));
                set(out, "data.target_field", json!("output"));
                set(out, "prompt.user_template", json!(ALPACA_USER_TEMPLATE));
                r.mapped.last_mut().expect("just pushed").to += ", data.target_field = output, \
                    prompt.user_template = Alpaca's instruction layout";
                r.unsupported(
                    file,
                    key,
                    "the alpaca `input` column is not part of the prompt: ferrotune's prompt \
                     takes one input field (merge input into instruction beforehand)",
                );
            }
            "completion" => r.unsupported(
                file,
                key,
                format!("raw-text completion (loss on every token) is not supported: {cannot}"),
            ),
            "chat_template" | "sharegpt" | "messages" | "chatml" => r.unsupported(
                file,
                key,
                format!(
                    "conversations (a list of messages per row) are not read: {cannot}; turn each \
                     conversation into a prompt field and a reply field"
                ),
            ),
            other => r.unsupported(
                file,
                key,
                format!("prompt strategy `{other}` is not implemented: {cannot}"),
            ),
        },
        Some(Value::Object(custom)) => {
            for k in custom.keys() {
                if !CUSTOM_TYPE_KEYS.contains(&k.as_str()) {
                    r.unknown(file, format!("{key}.{k}"), Kind::Axolotl);
                }
            }
            let field = |name: &str, default: &str| {
                custom.get(name).map(show).unwrap_or_else(|| default.into())
            };
            let instruction = field("field_instruction", "instruction");
            let output = field("field_output", "output");
            put(
                out,
                r,
                file,
                &format!("{key}.field_instruction"),
                "data.input_field",
                json!(instruction),
            );
            put(
                out,
                r,
                file,
                &format!("{key}.field_output"),
                "data.target_field",
                json!(output),
            );
            let has_input = custom.get("field_input").is_some_and(|v| !is_unset(v));
            let format = custom.get("format").map(show);
            let no_input = custom.get("no_input_format").map(show);
            let chosen = match (&format, &no_input) {
                (Some(f), Some(n)) if f.contains("{input}") => {
                    r.ignore(
                        file,
                        format!("{key}.format"),
                        "uses {input}; no_input_format is used instead",
                    );
                    Some((n.clone(), "no_input_format"))
                }
                (Some(f), _) => Some((f.clone(), "format")),
                (None, Some(n)) => Some((n.clone(), "no_input_format")),
                (None, None) => None,
            };
            if has_input {
                r.unsupported(
                    file,
                    format!("{key}.field_input"),
                    "ferrotune's prompt takes one input field; the input column is not used",
                );
            }
            match chosen {
                Some((f, which)) => {
                    let k = format!("{key}.{which}");
                    if f.contains("{instruction}") && !f.contains("{input}") {
                        let template = f.replace("{instruction}", "{dialogue}");
                        put(out, r, file, &k, "prompt.user_template", json!(template));
                        r.mapped.last_mut().expect("just pushed").to +=
                            " (sent as the user turn of the model's chat template)";
                    } else {
                        set(out, "prompt.user_template", json!("{dialogue}"));
                        r.unsupported(
                            file,
                            k,
                            "the format must place {instruction} (and not {input}); the prompt \
                             is the instruction field alone",
                        );
                    }
                    if which == "format" && no_input.is_some() {
                        r.ignore(file, format!("{key}.no_input_format"), "format is used");
                    }
                }
                None => {
                    set(out, "prompt.user_template", json!("{dialogue}"));
                    r.ignore(
                        file,
                        format!("{key}.format"),
                        "not set: the prompt is the instruction field",
                    );
                }
            }
            if let Some(s) = custom.get("system_prompt").filter(|v| !is_unset(v)) {
                put(
                    out,
                    r,
                    file,
                    &format!("{key}.system_prompt"),
                    "prompt.system",
                    json!(show(s)),
                );
            }
            for k in ["field_system", "system_format", "field"] {
                if custom.get(k).is_some_and(|v| !is_unset(v)) {
                    r.unsupported(
                        file,
                        format!("{key}.{k}"),
                        "ferrotune's system message is one fixed text (prompt.system)",
                    );
                }
            }
        }
        Some(other) => r.unsupported(file, key, format!("`{}`: not a dataset type", show(other))),
    }
}
