//! TensorBoard event files: byte-exact against TensorBoard's own protobuf classes and record
//! writer, and read back by TensorBoard's `EventAccumulator` after real (tiny) training runs,
//! including a resumed one.

mod report_common;

use std::collections::BTreeMap;
use std::path::Path;

use ferrotune::eval::results::EvalResults;
use ferrotune::report::event;
use ferrotune::report::tfrecord::append_record;
use ferrotune::train::metrics::{self, StepRecord};
use report_common::{TinyRun, report_fixtures, run_python};
use serde_json::Value;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn records_match_tensorboards_encoding() {
    let text = std::fs::read_to_string(report_fixtures().join("events.json")).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let wall_time = case["wall_time"].as_f64().unwrap();
        let step = case["step"].as_i64().unwrap_or(0);
        let payload = match case["kind"].as_str().unwrap() {
            "file_version" => event::file_version(wall_time),
            "session_start" => event::session_start(wall_time, step),
            "scalars" => {
                let values: Vec<(String, f64)> =
                    serde_json::from_value(case["values"].clone()).unwrap();
                let values: Vec<(&str, f64)> =
                    values.iter().map(|(t, v)| (t.as_str(), *v)).collect();
                event::scalars(wall_time, step, &values)
            }
            other => panic!("unknown case {other}"),
        };
        let mut record = Vec::new();
        append_record(&mut record, &payload);
        assert_eq!(hex(&record), case["record_hex"].as_str().unwrap(), "{case}");
    }
}

/// `{tag: [(step, value)]}` as TensorBoard reads `dir`.
fn tensorboard_scalars(dir: &Path) -> BTreeMap<String, Vec<(u64, f64)>> {
    let text = run_python("read_events.py", &[dir]);
    let raw: BTreeMap<String, Vec<(u64, f64, f64)>> = serde_json::from_str(&text).unwrap();
    raw.into_iter()
        .map(|(tag, events)| {
            let wall: Vec<f64> = events.iter().map(|e| e.2).collect();
            assert!(wall.is_sorted(), "{tag}: wall times go back: {wall:?}");
            (tag, events.into_iter().map(|(s, v, _)| (s, v)).collect())
        })
        .collect()
}

/// What the training tags should hold for `records`, rounded to f32 as TensorBoard stores them.
fn expected_train(records: &[StepRecord]) -> BTreeMap<String, Vec<(u64, f64)>> {
    let f32ed = |v: f64| f64::from(v as f32);
    type Field = fn(&StepRecord) -> f64;
    let tags: [(&str, Field); 5] = [
        ("train/loss", |r| r.loss),
        ("train/learning_rate", |r| r.learning_rate),
        ("train/grad_norm", |r| r.grad_norm),
        ("train/tokens_per_second", |r| r.tokens_per_second),
        ("train/peak_memory_bytes", |r| {
            r.peak_memory_bytes.expect("recorded on Linux") as f64
        }),
    ];
    tags.iter()
        .map(|(tag, value)| {
            let series = records.iter().map(|r| (r.step, f32ed(value(r)))).collect();
            (tag.to_string(), series)
        })
        .collect()
}

fn eval_results(path: &Path) -> EvalResults {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rouge_tags(results: &EvalResults) -> [(&'static str, f64); 4] {
    let r = &results.plain;
    [
        ("eval/rouge1", r.rouge1),
        ("eval/rouge2", r.rouge2),
        ("eval/rougeL", r.rouge_l),
        ("eval/rougeLsum", r.rouge_lsum),
    ]
}

#[test]
fn tensorboard_reads_the_training_scalars() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let rows = report_common::repo_root().join("trainer/tests/fixtures/data/rows.jsonl");
    TinyRun {
        mode: "lora",
        steps: 5,
        save_steps: 0,
        eval_rows: &rows,
    }
    .train(&out);

    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("events.out.tfevents."))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");

    let records = metrics::read(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(records.len(), 5);
    assert!(
        records
            .iter()
            .all(|r| r.peak_memory_bytes.unwrap() > 1 << 20)
    );
    let mut scalars = tensorboard_scalars(&out);
    let before = eval_results(&out.join("base_eval/eval_results.json"));
    let after = eval_results(&out.join("lora_adapters/eval_results.json"));
    for ((tag, untuned), (_, tuned)) in rouge_tags(&before).into_iter().zip(rouge_tags(&after)) {
        let series = scalars.remove(tag).unwrap_or_else(|| panic!("no {tag}"));
        assert_eq!(
            series,
            [(0, f64::from(untuned as f32)), (5, f64::from(tuned as f32))],
            "{tag}"
        );
    }
    assert_eq!(scalars, expected_train(&records));
}

#[test]
fn a_resumed_run_replaces_the_steps_it_rewrites() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let rows = report_common::repo_root().join("trainer/tests/fixtures/data/rows.jsonl");
    let run = TinyRun {
        mode: "lora",
        steps: 4,
        save_steps: 2,
        eval_rows: &rows,
    };
    run.train(&out);
    let first = metrics::read(&out.join("metrics.jsonl")).unwrap();
    // Lose the last checkpoint, as a crash before it was written would: the next run resumes
    // at step 2 and trains steps 3 and 4 again.
    std::fs::remove_dir_all(out.join("checkpoints/step-00000004")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new file name (seconds)
    run.train(&out);
    let second = metrics::read(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(second.len(), 4);
    assert_eq!(first[..2], second[..2]);
    assert_ne!(
        first[2].elapsed_seconds, second[2].elapsed_seconds,
        "step 3 was trained again"
    );

    let event_files = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("events.out.tfevents.")
        })
        .count();
    assert_eq!(event_files, 2);
    let mut scalars = tensorboard_scalars(&out);
    // Steps 3 and 4 appear once, as the second run wrote them (metrics.jsonl's final content).
    let expected = expected_train(&second);
    for (tag, series) in &expected {
        assert_eq!(&scalars[tag], series, "{tag}");
    }
    // Both processes evaluated the untuned model (the same numbers) at step 0; the trained
    // model's result is the second run's, at step 4.
    let after = eval_results(&out.join("lora_adapters/eval_results.json"));
    for (tag, tuned) in rouge_tags(&after) {
        let series = scalars.remove(tag).unwrap();
        let (untuned, last) = series.split_at(series.len() - 1);
        assert_eq!(last, [(4, f64::from(tuned as f32))], "{tag}");
        assert_eq!(untuned.len(), 2, "{tag}: {series:?}");
        assert!(
            untuned.iter().all(|e| *e == untuned[0] && e.0 == 0),
            "{tag}"
        );
    }
}
