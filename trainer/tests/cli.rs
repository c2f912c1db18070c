//! The command line as a user meets it: help that explains every option, and bad input answered
//! with one clear line naming the file and the field — never a panic or a backtrace.

mod common;

use std::path::Path;

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = common::ferrotune().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn assert_clean_error(stderr: &str) {
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    let once = last.matches("No such file or directory").count();
    assert!(once <= 1, "a cause is repeated: {last}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
}

#[test]
fn help_explains_every_option() {
    let (code, out, _) = run(&["train", "--help"]);
    assert_eq!(code, Some(0));
    for word in [
        "--config",
        "--set",
        "checkpoint",
        "lora_adapters",
        "final_model",
    ] {
        assert!(out.contains(word), "train --help lacks {word}:\n{out}");
    }
    let (_, out, _) = run(&["eval", "--help"]);
    for word in ["--config", "--model-path", "--predictions", "--set"] {
        assert!(out.contains(word), "eval --help lacks {word}:\n{out}");
    }
}

#[test]
fn bad_config_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::tiny_config(dir.path());
    let config = config.to_str().unwrap();
    let (code, _, err) = run(&["train", "--config", config, "--set", "training.mode=lroa"]);
    assert_eq!(code, Some(1));
    assert_clean_error(&err);
    assert!(
        err.contains(config) && err.contains("training.mode") && err.contains("qlora"),
        "{err}"
    );

    let (code, _, err) = run(&["train", "--config", config, "--set", "lora.dropout=2"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("lora.dropout") && err.contains("[0, 1)"),
        "{err}"
    );
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::tiny_config(dir.path());
    let config = config.to_str().unwrap();
    let (code, _, err) = run(&[
        "train",
        "--config",
        config,
        "--set",
        "data.train=/nowhere/train.jsonl",
    ]);
    assert_eq!(code, Some(1));
    assert_clean_error(&err);
    assert!(err.contains("/nowhere/train.jsonl"), "{err}");

    let (code, _, err) = run(&[
        "train",
        "--config",
        config,
        "--set",
        "model.path=/nowhere/model.gguf",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/nowhere/model.gguf"), "{err}");

    let (code, _, err) = run(&["train", "--config", "/nowhere/config.yaml"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/nowhere/config.yaml"), "{err}");
}

#[test]
fn rescoring_predictions_prints_the_course_numbers() {
    let file = common::shared().join("fixtures/rouge-course/baseline_qlora.predictions.jsonl");
    let (code, out, err) = run(&["eval", "--predictions", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let exact: serde_json::Value = serde_json::from_slice(
        &std::fs::read(common::shared().join("fixtures/rouge-course/exact_means.json")).unwrap(),
    )
    .unwrap();
    for key in ["rouge1", "rouge2", "rougeL", "rougeLsum"] {
        let want = exact["baseline_qlora"]["plain"][key].as_f64().unwrap();
        assert!((v[key].as_f64().unwrap() - want).abs() < 1e-9, "{key}");
    }
    assert_eq!(v["num_samples"], 200);
}

#[test]
fn eval_needs_a_model_or_predictions() {
    let (code, _, err) = run(&["eval"]);
    assert_eq!(code, Some(2), "usage errors exit with 2");
    assert!(
        err.contains("--model-path") || err.contains("--predictions"),
        "{err}"
    );
    let missing = Path::new("/nowhere/predictions.jsonl");
    let (code, _, err) = run(&["eval", "--predictions", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("/nowhere/predictions.jsonl"), "{err}");
}
