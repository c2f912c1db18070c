//! Loading configs: defaults, overrides, and errors that name the file, the field and what is allowed.

use std::path::Path;

use ferrotune_config::{Config, ConfigError, Mode, Strategy, TargetModule};

const MINIMAL: &str = "model:\n  path: m.gguf\ndata:\n  train: train.jsonl\n";

fn load(text: &str, overrides: &[&str]) -> Result<Config, ConfigError> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Config::from_yaml(text, Path::new("job.yaml"), &overrides)
}

fn field_error(text: &str, overrides: &[&str]) -> (String, String) {
    match load(text, overrides) {
        Err(ConfigError::Field {
            file,
            field,
            message,
        }) => {
            assert_eq!(file, Path::new("job.yaml"));
            (field, message)
        }
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn minimal_config_takes_the_course_defaults() {
    let c = load(MINIMAL, &[]).unwrap();
    assert_eq!(c.training.mode, Mode::Qlora);
    assert_eq!(c.training.learning_rate(), 2e-4);
    assert_eq!(c.training.micro_batch_size(), 2);
    assert_eq!(c.training.gradient_accumulation_steps(), 8);
    assert_eq!(c.training.warmup_steps(1000), 50);
    assert_eq!(c.lora.r, 16);
    assert_eq!(c.lora.alpha, 32.0);
    assert_eq!(
        c.lora_targets(),
        vec![TargetModule::QProj, TargetModule::VProj]
    );
    assert_eq!(c.training.max_seq_length, 512);
    assert_eq!(c.eval.num_samples, 200);
    assert_eq!(c.eval.max_new_tokens, 256);
    assert!(c.prompt.user_template.contains("{dialogue}"));
}

#[test]
fn mode_changes_the_defaults() {
    let full = load(MINIMAL, &["training.mode=full"]).unwrap();
    assert_eq!(full.training.learning_rate(), 5e-5);
    assert_eq!(full.training.warmup_steps(1000), 100);
    let lora = load(MINIMAL, &["training.mode=lora"]).unwrap();
    assert_eq!(
        (
            lora.training.micro_batch_size(),
            lora.training.gradient_accumulation_steps()
        ),
        (4, 4)
    );
    assert_eq!(lora.lora_targets().len(), 4);
}

#[test]
fn overrides_keep_yaml_types_and_create_sections() {
    let c = load(
        MINIMAL,
        &[
            "training.learning_rate=1e-4",
            "lora.target_modules=[q_proj, down_proj]",
            "eval.before_training=true",
        ],
    )
    .unwrap();
    assert_eq!(c.training.learning_rate(), 1e-4);
    assert_eq!(
        c.lora_targets(),
        vec![TargetModule::QProj, TargetModule::DownProj]
    );
    assert!(c.eval.before_training);
}

#[test]
fn strategy_aliases_name_the_same_strategies() {
    for (alias, strategy) in [
        ("fsdp", Strategy::Zero3),
        ("shard_grad_op", Strategy::Zero2),
        ("deepspeed_zero3", Strategy::Zero3),
    ] {
        let c = load(MINIMAL, &[&format!("distributed.strategy={alias}")]).unwrap();
        assert_eq!(c.distributed.strategy, strategy, "{alias}");
    }
}

#[test]
fn unknown_variant_lists_what_is_allowed() {
    let (field, message) = field_error(MINIMAL, &["training.mode=lroa"]);
    assert_eq!(field, "training.mode");
    assert!(
        message.contains("lroa") && message.contains("qlora") && message.contains("full"),
        "{message}"
    );
}

#[test]
fn unknown_field_is_named() {
    let (field, message) = field_error(&format!("{MINIMAL}training:\n  lr: 0.1\n"), &[]);
    assert!(field.starts_with("training"), "{field}");
    assert!(
        message.contains("unknown field `lr`") && message.contains("learning_rate"),
        "{message}"
    );
}

#[test]
fn wrong_type_is_named() {
    let (field, message) = field_error(MINIMAL, &["training.micro_batch_size=two"]);
    assert_eq!(field, "training.micro_batch_size");
    assert!(message.contains("invalid type"), "{message}");
}

#[test]
fn range_and_cross_field_rules() {
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["training.learning_rate=-1"],
            "training.learning_rate",
            "> 0",
        ),
        (&["lora.dropout=1.5"], "lora.dropout", "[0, 1)"),
        (&["lora.r=0"], "lora.r", "at least 1"),
        (
            &["training.warmup_steps=10", "training.warmup_ratio=0.1"],
            "training.warmup_ratio",
            "not both",
        ),
        (&["model.hub=meta-llama/Llama-3.2-1B"], "model", "not both"),
        (
            &["training.dtype=bf16", "training.device=cpu"],
            "training.dtype",
            "cuda",
        ),
        (
            &["prompt.user_template=Summarise this"],
            "prompt.user_template",
            "{dialogue}",
        ),
        (
            &["training.max_seq_length=4"],
            "training.max_seq_length",
            "at least 16",
        ),
        (&["eval.batch_size=0"], "eval.batch_size", "at least 1"),
    ];
    for (overrides, want_field, want_text) in cases {
        let (field, message) = field_error(MINIMAL, overrides);
        assert_eq!(&field, want_field, "{overrides:?}");
        assert!(message.contains(want_text), "{overrides:?}: {message}");
    }
}

#[test]
fn missing_sections_and_syntax_errors() {
    let (field, message) = field_error("model:\n  path: m.gguf\n", &[]);
    assert_eq!(field, "(top level)");
    assert!(message.contains("missing field `data`"), "{message}");
    match load("model: [unclosed\n", &[]) {
        Err(ConfigError::Syntax { file, .. }) => assert_eq!(file, Path::new("job.yaml")),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    match load(MINIMAL, &["training.learning_rate=.nan"]) {
        Err(e @ ConfigError::Override { .. }) => {
            assert!(e.to_string().contains("non-finite"), "{e}")
        }
        other => panic!("a NaN learning rate must be refused, got {other:?}"),
    }
    match load(MINIMAL, &["no_equals_sign"]) {
        Err(e @ ConfigError::Override { .. }) => assert!(e.to_string().contains("key=value")),
        other => panic!("expected an override error, got {other:?}"),
    }
}

#[test]
fn resolved_yaml_round_trips() {
    let c = load(MINIMAL, &["training.mode=lora", "training.max_steps=7"]).unwrap();
    let again = Config::from_yaml(&c.to_yaml(), Path::new("resolved.yaml"), &[]).unwrap();
    assert_eq!(again, c);
}

#[test]
fn io_error_names_the_file() {
    let err = Config::load(Path::new("/nonexistent/dir/job.yaml"), &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/dir/job.yaml: cannot read"),
        "{err}"
    );
}
