//! Axolotl, accelerate and DeepSpeed configs run as they are: each fixture converts to the
//! expected ferrotune config, what cannot map is reported by name (an error with --strict), the
//! printed YAML loads again, `--as-trainingjob` prints a valid TrainingJob, and a converted
//! Axolotl QLoRA config trains SmolLM2 end to end through the CLI.

mod common;

use std::path::{Path, PathBuf};

use ferrotune_config::migrate::{self, Kind, Migration, Request};
use ferrotune_config::{Config, DataFormat, Mode, Precision, Schedule, Strategy, TargetModule};
use ferrotune_crds::TrainingJob;

fn fixture(name: &str) -> PathBuf {
    common::fixtures().join("migration").join(name)
}

fn convert(files: &[&str], accelerate: Option<&str>, deepspeed: Option<&str>) -> Migration {
    migrate::migrate(&Request {
        files: files.iter().map(|f| fixture(f)).collect(),
        accelerate: accelerate.map(fixture),
        deepspeed: deepspeed.map(fixture),
        ..Request::default()
    })
    .unwrap()
}

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = common::ferrotune()
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn path(name: &str) -> String {
    fixture(name).display().to_string()
}

fn sorted(keys: Vec<&str>) -> Vec<String> {
    let mut v: Vec<String> = keys.into_iter().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn course_qlora_axolotl_config_maps_onto_the_course_defaults() {
    let m = convert(&["axolotl-qlora.yml"], None, None);
    assert_eq!(m.main_kind, Kind::Axolotl);
    let c = &m.config;
    assert_eq!(
        c.model.hub.as_deref(),
        Some("meta-llama/Llama-3.2-1B-Instruct")
    );
    assert_eq!(c.model.path, None);
    assert_eq!(c.training.mode, Mode::Qlora);
    assert_eq!((c.lora.r, c.lora.alpha, c.lora.dropout), (16, 32.0, 0.1));
    assert_eq!(
        c.lora.target_modules,
        Some(vec![TargetModule::QProj, TargetModule::VProj])
    );
    assert_eq!(c.data.train, "data/quickstart/train.jsonl");
    assert_eq!(c.data.eval.as_deref(), Some("data/quickstart/eval.jsonl"));
    assert_eq!(c.data.input_field, "dialogue");
    assert_eq!(c.data.target_field, "summary");
    // The course's instruction, with Axolotl's {instruction} where ferrotune puts {dialogue}.
    assert_eq!(
        c.prompt.user_template,
        ferrotune_config::DEFAULT_USER_TEMPLATE
    );
    let t = &c.training;
    assert_eq!(t.max_seq_length, 512);
    assert_eq!(t.micro_batch_size, Some(2));
    assert_eq!(t.gradient_accumulation_steps, Some(8));
    assert_eq!(t.epochs, 1);
    assert_eq!(t.max_steps, None);
    assert_eq!(t.learning_rate, Some(2e-4));
    assert_eq!(t.lr_scheduler, Schedule::Cosine);
    assert_eq!(t.warmup_steps, Some(50));
    assert_eq!(t.weight_decay, 0.0);
    assert_eq!(t.max_grad_norm, 1.0);
    assert_eq!(t.dtype, Precision::Auto);
    assert!(!t.gradient_checkpointing);
    assert_eq!(
        (t.logging_steps, t.save_steps, t.save_total_limit),
        (25, 100, 2)
    );
    assert_eq!((t.seed, c.data.shuffle_seed), (42, 42));
    assert_eq!(c.output.dir, "./outputs/qlora-course");
    assert_eq!(c.distributed.strategy, Strategy::Ddp);
    assert_eq!(m.launch.world_size(), 1);
    assert_eq!(
        sorted(m.report.unsupported_keys()),
        ["optimizer", "special_tokens"]
    );
    assert!(m.report.unknown.is_empty(), "{:?}", m.report.unknown);
}

#[test]
fn axolotl_deepspeed_key_reads_the_zero2_file_beside_it() {
    let m = convert(&["axolotl-lora-zero2.yml"], None, None);
    let c = &m.config;
    assert_eq!(
        c.model.path.as_deref(),
        Some("./models/Llama-3.2-1B-Instruct")
    );
    assert_eq!(c.training.mode, Mode::Lora);
    assert_eq!((c.lora.r, c.lora.alpha, c.lora.dropout), (8, 16.0, 0.05));
    assert_eq!(c.lora.target_modules, Some(TargetModule::ALL.to_vec()));
    assert_eq!(c.data.train, "data/alpaca.jsonl");
    assert_eq!(
        (c.data.input_field.as_str(), c.data.target_field.as_str()),
        ("instruction", "output")
    );
    assert_eq!(
        c.prompt.user_template,
        migrate::axolotl::ALPACA_USER_TEMPLATE
    );
    assert_eq!(c.data.eval_fraction, 0.05);
    let t = &c.training;
    assert_eq!(t.max_seq_length, 1024);
    assert_eq!(
        (t.micro_batch_size, t.gradient_accumulation_steps),
        (Some(4), Some(4))
    );
    assert_eq!(t.max_steps, Some(200));
    assert_eq!(t.learning_rate, Some(1e-4));
    assert_eq!(t.lr_scheduler, Schedule::Linear);
    assert_eq!((t.warmup_steps, t.warmup_ratio), (None, Some(0.1)));
    assert_eq!(t.dtype, Precision::Bf16);
    assert!(t.gradient_checkpointing);
    assert_eq!(t.seed, 7);
    // ZeRO-2 with 2e8-element buckets of f32 gradients; "auto" values keep the Axolotl ones.
    assert_eq!(c.distributed.strategy, Strategy::Zero2);
    assert_eq!(c.distributed.bucket_size_mb, 762.94);
    assert!(
        m.report
            .mapped
            .iter()
            .any(|x| x.key == "deepspeed" && x.to.contains("zero2.json"))
    );
    // Alpaca's `input` column cannot be part of a one-field prompt.
    assert_eq!(sorted(m.report.unsupported_keys()), ["datasets[0].type"]);
    assert!(m.report.unknown.is_empty(), "{:?}", m.report.unknown);
}

#[test]
fn deepspeed_zero3_file_wins_and_maps_its_explicit_values() {
    let m = convert(&["axolotl-lora-zero2.yml"], None, Some("zero3.json"));
    let c = &m.config;
    let t = &c.training;
    assert_eq!(c.distributed.strategy, Strategy::Zero3);
    assert_eq!(c.distributed.bucket_size_mb, 190.73);
    assert_eq!(t.learning_rate, Some(5e-5));
    assert_eq!(
        (t.adam_beta1, t.adam_beta2, t.adam_epsilon),
        (0.9, 0.95, 1e-8)
    );
    assert_eq!(t.weight_decay, 0.01);
    assert_eq!(t.lr_scheduler, Schedule::Cosine);
    assert_eq!((t.warmup_steps, t.warmup_ratio), (Some(100), None));
    assert_eq!(
        (t.micro_batch_size, t.gradient_accumulation_steps),
        (Some(2), Some(8))
    );
    assert_eq!(t.max_grad_norm, 1.0);
    assert_eq!(t.dtype, Precision::Bf16);
    assert!(
        m.report
            .ignored
            .iter()
            .any(|i| i.key == "deepspeed" && i.reason.contains("overridden by"))
    );
    assert!(
        m.report
            .unsupported_keys()
            .contains(&"zero_optimization.offload_optimizer")
    );
    let unknown: Vec<&str> = m.report.unknown_keys();
    assert_eq!(unknown, ["zero_optimization.stage3_max_live_params"]);
    assert_eq!(m.report.unknown[0].tool, Kind::DeepSpeed);
}

#[test]
fn accelerate_ddp_gives_four_processes_and_bf16() {
    let m = convert(&["axolotl-qlora.yml"], Some("accelerate-ddp.yaml"), None);
    assert_eq!(m.config.distributed.strategy, Strategy::Ddp);
    assert_eq!(m.config.training.dtype, Precision::Bf16);
    assert_eq!(
        (
            m.launch.nodes,
            m.launch.procs_per_node,
            m.launch.master_port
        ),
        (1, 4, Some(29600))
    );
    let hint = m.launch.launch_hint().unwrap();
    assert!(hint.contains("NPROC_PER_NODE=4"), "{hint}");
    // Only the Axolotl file's two settings are left out; the accelerate file maps cleanly.
    assert_eq!(m.report.unsupported.len(), 2, "{:?}", m.report.unsupported);
}

#[test]
fn accelerate_fsdp_shard_grad_op_is_zero2_over_two_nodes() {
    // Given positionally: the file is told apart by its keys.
    let m = convert(
        &["accelerate-fsdp-shard-grad-op.yaml", "axolotl-qlora.yml"],
        None,
        None,
    );
    assert_eq!(m.config.distributed.strategy, Strategy::Zero2);
    assert_eq!(m.config.training.dtype, Precision::Bf16);
    assert_eq!((m.launch.nodes, m.launch.procs_per_node), (2, 4));
    assert_eq!(m.launch.master_port, Some(29500));
    assert!(m.launch.launch_hint().unwrap().contains("NODE_RANK"));
    assert!(
        m.report
            .unsupported
            .iter()
            .all(|u| !u.file.ends_with("accelerate-fsdp-shard-grad-op.yaml"))
    );
}

#[test]
fn accelerate_fsdp_full_shard_is_zero3_and_offload_is_reported() {
    let m = convert(
        &["axolotl-qlora.yml"],
        Some("accelerate-fsdp-full-shard.yaml"),
        None,
    );
    assert_eq!(m.config.distributed.strategy, Strategy::Zero3);
    assert_eq!((m.launch.nodes, m.launch.procs_per_node), (1, 2));
    assert!(
        m.report
            .unsupported_keys()
            .contains(&"fsdp_config.fsdp_offload_params")
    );
}

#[test]
fn axolotl_fsdp_list_is_full_shard_full_fine_tuning() {
    let m = convert(&["axolotl-fsdp.yml"], None, None);
    let c = &m.config;
    assert_eq!(c.training.mode, Mode::Full);
    assert_eq!(
        c.model.path.as_deref(),
        Some("/models/llama-3.2-3b-instruct")
    );
    assert_eq!(c.data.train, "/data/samsum/train.parquet");
    assert_eq!(c.data.format, DataFormat::Parquet);
    assert_eq!(c.prompt.user_template, "{dialogue}");
    assert_eq!(c.training.learning_rate, Some(5e-5));
    assert_eq!(c.training.warmup_steps, Some(100));
    assert_eq!(c.distributed.strategy, Strategy::Zero3);
    assert!(m.report.is_clean(), "{:?}", m.report.problems());
}

#[test]
fn unknown_and_unsupported_keys_are_reported_by_name() {
    let m = convert(&["axolotl-unknown.yml"], None, None);
    assert_eq!(
        sorted(m.report.unknown_keys()),
        [
            "datasets[0].shuffle_rows",
            "lora_rr",
            "micro_batch_sise",
            "per_device_train_batch_size"
        ]
    );
    let unsupported = m.report.unsupported_keys();
    for key in [
        "sample_packing",
        "train_on_inputs",
        "lora_modules_to_save",
        "lora_target_modules",
        "datasets[0].path",
        "datasets[0].type",
    ] {
        assert!(unsupported.contains(&key), "{key} missing: {unsupported:?}");
    }
    // lm_head is dropped from the targets, the projections kept.
    assert_eq!(
        m.config.lora.target_modules,
        Some(vec![TargetModule::QProj, TargetModule::VProj])
    );
    assert_eq!(m.config.training.epochs, 2);

    // One warning on stderr names them all; the conversion still succeeds.
    let (code, out, err) = cli(&["convert", &path("axolotl-unknown.yml")]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err.matches("WARN").count(), 1, "{err}");
    for key in [
        "lora_rr",
        "micro_batch_sise",
        "per_device_train_batch_size",
        "sample_packing",
        "train_on_inputs",
    ] {
        assert!(err.contains(&format!("`{key}`")), "{key} not named:\n{err}");
    }
    assert!(err.contains("is not a key Axolotl knows"), "{err}");
    assert!(out.contains("model:"), "{out}");
}

#[test]
fn strict_fails_naming_every_key() {
    let (code, out, err) = cli(&["convert", "--strict", &path("axolotl-unknown.yml")]);
    assert_eq!(code, Some(1));
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("error: --strict"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for key in [
        "lora_rr",
        "micro_batch_sise",
        "sample_packing",
        "lora_modules_to_save",
    ] {
        assert!(err.contains(key), "{key} not named:\n{err}");
    }

    // The same for train, before anything is loaded; and a clean config passes --strict.
    let (code, _, err) = cli(&[
        "train",
        "--strict",
        "--config",
        &path("axolotl-unknown.yml"),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("lora_rr"), "{err}");
    let (code, _, err) = cli(&["convert", "--strict", &path("axolotl-fsdp.yml")]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn printed_yaml_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], Vec<&str>); 4] = [
        (&["axolotl-qlora.yml"], vec![]),
        (
            &["axolotl-lora-zero2.yml"],
            vec!["--deepspeed", "zero3.json"],
        ),
        (
            &["axolotl-qlora.yml"],
            vec!["--accelerate-config", "accelerate-fsdp-shard-grad-op.yaml"],
        ),
        (&["axolotl-unknown.yml"], vec![]),
    ];
    for (i, (files, flags)) in cases.iter().enumerate() {
        let mut args: Vec<String> = vec!["convert".into()];
        args.extend(files.iter().map(|f| path(f)));
        for flag in flags {
            args.push(if flag.starts_with("--") {
                flag.to_string()
            } else {
                path(flag)
            });
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = cli(&refs);
        assert_eq!(code, Some(0), "{err}");
        let file = dir.path().join(format!("converted-{i}.yaml"));
        std::fs::write(&file, &out).unwrap();
        let loaded = Config::load(&file, &[]).unwrap();
        let accelerate = flags
            .iter()
            .position(|f| *f == "--accelerate-config")
            .map(|p| flags[p + 1]);
        let deepspeed = flags
            .iter()
            .position(|f| *f == "--deepspeed")
            .map(|p| flags[p + 1]);
        let direct = convert(files, accelerate, deepspeed);
        assert_eq!(loaded, direct.config, "case {i}:\n{out}");
        // A converted ferrotune config is itself a ferrotune config: converting it is the identity.
        let again = migrate::migrate(&Request {
            files: vec![file.clone()],
            ..Request::default()
        })
        .unwrap();
        assert_eq!(again.main_kind, Kind::Ferrotune);
        assert_eq!(again.config, loaded);
        assert!(again.report.is_clean());
    }
}

#[test]
fn as_trainingjob_prints_a_valid_training_job() {
    let (code, out, err) = cli(&[
        "convert",
        &path("axolotl-qlora.yml"),
        "--accelerate-config",
        &path("accelerate-fsdp-shard-grad-op.yaml"),
        "--as-trainingjob",
        "--image",
        "ferrotune:cuda",
        "--claim",
        "runs",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let job: TrainingJob = serde_saphyr::from_str(&out).unwrap();
    assert!(job.spec.problems().is_empty(), "{:?}", job.spec.problems());
    assert_eq!(job.metadata.name.as_deref(), Some("axolotl-qlora"));
    assert_eq!(job.spec.image, "ferrotune:cuda");
    assert_eq!(job.spec.storage.output.claim_name, "runs");
    assert_eq!(job.spec.parallelism.nodes, 2);
    assert_eq!(job.spec.parallelism.procs_per_node, 4);
    assert_eq!(job.spec.parallelism.master_port, 29500);
    assert_eq!(job.spec.training.distributed.strategy, Strategy::Zero2);
    assert_eq!(
        job.spec.training,
        convert(
            &["axolotl-qlora.yml"],
            Some("accelerate-fsdp-shard-grad-op.yaml"),
            None
        )
        .config
    );
    assert!(out.contains("apiVersion: ferrotune.dev/v1alpha1"), "{out}");
    assert!(out.contains("kind: TrainingJob"), "{out}");

    let (code, out, err) = cli(&[
        "convert",
        &path("axolotl-fsdp.yml"),
        "--as-trainingjob",
        "--name",
        "fsdp-full",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let job: TrainingJob = serde_saphyr::from_str(&out).unwrap();
    assert!(job.spec.problems().is_empty());
    assert_eq!(job.metadata.name.as_deref(), Some("fsdp-full"));
    assert_eq!(
        (
            job.spec.parallelism.nodes,
            job.spec.parallelism.procs_per_node
        ),
        (1, 1)
    );
}

#[test]
fn convert_help_explains_the_mapping() {
    let (code, out, _) = cli(&["convert", "--help"]);
    assert_eq!(code, Some(0));
    for word in [
        "--accelerate-config",
        "--deepspeed",
        "--strict",
        "--as-trainingjob",
        "--image",
        "--name",
        "--claim",
        "NPROC_PER_NODE",
        "FULL_SHARD",
        "zero_optimization.stage",
        "base_model",
    ] {
        assert!(out.contains(word), "convert --help lacks {word}:\n{out}");
    }
    let (_, out, _) = cli(&["train", "--help"]);
    for word in ["Axolotl", "--accelerate-config", "--deepspeed", "--strict"] {
        assert!(out.contains(word), "train --help lacks {word}:\n{out}");
    }
}

/// The course-style Axolotl QLoRA fixture, pointed at the quickstart rows and the SmolLM2 GGUF,
/// cut to a few steps.
fn quickstart_axolotl(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixture("axolotl-qlora.yml")).unwrap();
    let mut doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let data = common::repo().join("data/quickstart");
    doc["base_model"] = common::smollm2_gguf().display().to_string().into();
    doc["datasets"][0]["path"] = data.join("train.jsonl").display().to_string().into();
    doc["test_datasets"][0]["path"] = data.join("eval.jsonl").display().to_string().into();
    doc["output_dir"] = dir.join("out").display().to_string().into();
    doc["max_steps"] = 3.into();
    doc["gradient_accumulation_steps"] = 1.into();
    doc["warmup_steps"] = 1.into();
    doc["sequence_len"] = 384.into();
    doc["logging_steps"] = 1.into();
    doc["eval_max_new_tokens"] = 8.into();
    let file = dir.join("axolotl.yml");
    std::fs::write(&file, serde_saphyr::to_string(&doc).unwrap()).unwrap();
    file
}

#[test]
fn converted_axolotl_qlora_config_trains_smollm2() {
    let dir = tempfile::tempdir().unwrap();
    let config = quickstart_axolotl(dir.path());
    let out = common::ferrotune()
        .env("NO_COLOR", "1")
        .args(["train", "--config"])
        .arg(&config)
        .args([
            "--set",
            "eval.num_samples=2",
            "--set",
            "training.device=cpu",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("read an Axolotl config"), "{stderr}");
    assert!(stderr.contains("`optimizer`"), "{stderr}");
    let run = dir.path().join("out");
    assert!(
        run.join("lora_adapters/adapter_model.safetensors")
            .is_file()
    );
    let losses = ferrotune::train::metrics::read(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(losses.len(), 3);
    assert!(losses.iter().all(|r| r.loss.is_finite()));
    // The resolved config is the converted one, in qlora mode.
    let saved = Config::load(&run.join("config.yaml"), &[]).unwrap();
    assert_eq!(saved.training.mode, Mode::Qlora);
    assert_eq!(saved.training.max_steps, Some(3));
}
