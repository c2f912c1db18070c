//! Every example manifest in `configs/trainingjobs/` parses as a TrainingJob (unknown fields are
//! errors) and passes the spec checks the operator runs, so users can apply them as they are.

use ferrotune_crds::TrainingJob;
use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/trainingjobs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_parses_and_passes_the_spec_checks() {
    let files = examples();
    assert!(
        files.len() >= 13,
        "expected an example per course scenario in configs/trainingjobs, found {files:?}"
    );
    let mut failures = Vec::new();
    for file in &files {
        // As the operator's `render` reads a manifest: schema, apiVersion, kind and spec rules.
        let job = match ferrotune_crds::manifest::load(file) {
            Ok(job) => job,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let stem = file.file_stem().unwrap().to_str().unwrap();
        if job.metadata.name.as_deref() != Some(stem) {
            failures.push(format!(
                "{}: metadata.name is {:?}, expected the file's name {stem:?}",
                file.display(),
                job.metadata.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The scenarios of the reference course, each with the strategy, world size and mode it names.
#[test]
fn examples_cover_the_course_scenarios() {
    use ferrotune_config::schema::{Mode, Strategy};
    let expect: &[(&str, Mode, Strategy, u32, u32)] = &[
        ("qlora-1gpu", Mode::Qlora, Strategy::Ddp, 1, 1),
        ("ddp-qlora-2gpu", Mode::Qlora, Strategy::Ddp, 1, 2),
        ("ddp-qlora-4gpu", Mode::Qlora, Strategy::Ddp, 1, 4),
        (
            "lora-zero2-shard-grad-op-2gpu",
            Mode::Lora,
            Strategy::Zero2,
            1,
            2,
        ),
        (
            "lora-zero2-shard-grad-op-4gpu",
            Mode::Lora,
            Strategy::Zero2,
            1,
            4,
        ),
        (
            "lora-zero3-full-shard-2gpu",
            Mode::Lora,
            Strategy::Zero3,
            1,
            2,
        ),
        (
            "lora-zero3-full-shard-4gpu",
            Mode::Lora,
            Strategy::Zero3,
            1,
            4,
        ),
        (
            "full-zero2-shard-grad-op-2gpu",
            Mode::Full,
            Strategy::Zero2,
            1,
            2,
        ),
        (
            "full-zero2-shard-grad-op-4gpu",
            Mode::Full,
            Strategy::Zero2,
            1,
            4,
        ),
        (
            "full-zero3-full-shard-2gpu",
            Mode::Full,
            Strategy::Zero3,
            1,
            2,
        ),
        (
            "full-zero3-full-shard-4gpu",
            Mode::Full,
            Strategy::Zero3,
            1,
            4,
        ),
        (
            "multinode-full-zero3-full-shard-2x4gpu",
            Mode::Full,
            Strategy::Zero3,
            2,
            4,
        ),
        ("cpu-smollm2-kind", Mode::Lora, Strategy::Ddp, 1, 1),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/trainingjobs");
    for &(name, mode, strategy, nodes, procs) in expect {
        let file = dir.join(format!("{name}.yaml"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let job: TrainingJob =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let spec = &job.spec;
        let at = file.display();
        assert_eq!(spec.training.training.mode, mode, "{at}: training.mode");
        assert_eq!(
            spec.training.distributed.strategy, strategy,
            "{at}: distributed.strategy"
        );
        assert_eq!(spec.parallelism.nodes, nodes, "{at}: parallelism.nodes");
        assert_eq!(
            spec.parallelism.procs_per_node, procs,
            "{at}: parallelism.procsPerNode"
        );
        let gpus = spec
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("nvidia.com/gpu"))
            .map(|q| q.0.clone());
        if name.starts_with("cpu-") {
            assert_eq!(gpus, None, "{at}: a CPU job asks for no GPU");
            assert!(
                spec.training.model.path.is_some(),
                "{at}: model from a volume"
            );
        } else {
            assert_eq!(
                gpus.as_deref(),
                Some(procs.to_string().as_str()),
                "{at}: one GPU per process"
            );
            assert_eq!(
                spec.training.model.hub.as_deref(),
                Some("meta-llama/Llama-3.2-3B-Instruct"),
                "{at}: the course's model"
            );
            assert!(spec.storage.hf_token.is_some(), "{at}: a Hub token Secret");
            // The course's per-GPU batch and learning rate for the mode.
            let t = &spec.training.training;
            let (micro, accum, lr) = match mode {
                Mode::Qlora => (2, 8, 2e-4),
                Mode::Lora => (4, 4, 2e-4),
                Mode::Full => (2, 8, 5e-5),
            };
            assert_eq!(t.micro_batch_size(), micro, "{at}: micro_batch_size");
            assert_eq!(
                t.gradient_accumulation_steps(),
                accum,
                "{at}: gradient_accumulation_steps"
            );
            assert_eq!(t.learning_rate(), lr, "{at}: learning_rate");
            assert_eq!(t.max_seq_length, 512, "{at}: max_seq_length");
            let samples = spec.training.data.max_train_samples;
            let expected = if mode == Mode::Qlora { None } else { Some(100) };
            assert_eq!(samples, expected, "{at}: data.max_train_samples");
        }
    }
}
