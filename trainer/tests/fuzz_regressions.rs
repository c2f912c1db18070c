//! The inputs that crashed the fuzz targets (fuzz/regressions/<target>/), fed through the same
//! entry points as the targets in fuzz/fuzz_targets/, must fail with an error that names the field
//! at fault; and the crafted seeds (fuzz/corpus/) must still load, so the fuzzer starts from inputs
//! that reach deep into each loader. Runs without the fuzzer (`cargo test --test fuzz_regressions`).

use std::path::{Path, PathBuf};

use candle_core::Device;
use ferrotune::model::load::{ModelSource, load, read_gguf_header};
use ferrotune::tokenizer::Tokenizer;
use ferrotune::train::checkpoint::{Checkpoint, newest, restore, shard_file};

/// Every regression input, with a substring its error must contain.
const REGRESSIONS: [(&str, &str, &str); 7] = [
    (
        "gguf",
        "block-count-huge",
        "llama.block_count is 4278124545",
    ),
    ("gguf", "alignment-zero", "general.alignment is 0"),
    ("gguf", "head-dim-overflow", "the sizes overflow"),
    (
        "safetensors_model",
        "layers-huge",
        "num_hidden_layers is 1099511627776",
    ),
    (
        "safetensors_model",
        "head-dim-overflow",
        "the sizes overflow",
    ),
    ("checkpoint", "empty-step", "`step` must hold one i64"),
    (
        "checkpoint",
        "offset-overflow",
        "runs past the 4 elements of a",
    ),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn input(dir: &str, target: &str, name: &str) -> Vec<u8> {
    let path = fuzz_dir().join(dir).join(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text file before the first NUL and the binary file after it (fuzz/src/lib.rs).
fn split_at_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The gguf target: the model loader, then the tokenizer from the header.
fn gguf(data: &[u8]) -> anyhow::Result<Tokenizer> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("model.gguf");
    std::fs::write(&path, data)?;
    load(&ModelSource::Gguf(path.clone()), &Device::Cpu)?;
    Ok(Tokenizer::from_gguf(&read_gguf_header(&path)?)?)
}

/// The safetensors_model target: config.json NUL model.safetensors.
fn safetensors_model(data: &[u8]) -> anyhow::Result<()> {
    let (config, weights) = split_at_nul(data);
    let tmp = tempfile::tempdir()?;
    std::fs::write(tmp.path().join("config.json"), config)?;
    std::fs::write(tmp.path().join("model.safetensors"), weights)?;
    load(&ModelSource::HfDir(tmp.path().to_path_buf()), &Device::Cpu).map(drop)
}

/// The checkpoint target: state.json NUL shard, the shard (with its CRC-32) for every rank the
/// state names (up to 4), then `newest` and `restore` of tensors `a` (4) and `b` (2).
fn checkpoint(data: &[u8]) -> anyhow::Result<()> {
    let (state, shard) = split_at_nul(data);
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("step-00000001");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("state.json"), state)?;
    let world = serde_json::from_slice::<serde_json::Value>(state)
        .ok()
        .and_then(|v| v.get("world_size")?.as_u64())
        .map_or(1, |w| w.clamp(1, 4) as usize);
    for rank in 0..world {
        let name = shard_file(rank, world);
        std::fs::write(dir.join(&name), shard)?;
        let crc = format!("{:08x}\n", crc32fast::hash(shard));
        std::fs::write(dir.join(format!("{name}.crc32")), crc)?;
    }
    let ckpt: Checkpoint =
        newest(tmp.path())?.ok_or_else(|| anyhow::anyhow!("no usable checkpoint"))?;
    restore(&ckpt, &[("a".to_string(), 4), ("b".to_string(), 2)]).map(drop)
}

fn run(target: &str, data: &[u8]) -> anyhow::Result<()> {
    match target {
        "gguf" => gguf(data).map(drop),
        "safetensors_model" => safetensors_model(data),
        "checkpoint" => checkpoint(data),
        other => panic!("no entry point for fuzz target {other}"),
    }
}

#[test]
fn crashing_inputs_are_refused_with_a_named_field() {
    for (target, name, expected) in REGRESSIONS {
        let err = run(target, &input("regressions", target, name))
            .expect_err(&format!("{target}/{name} must be refused"));
        let msg = format!("{err:#}");
        assert!(msg.contains(expected), "{target}/{name}: {msg}");
    }
}

#[test]
fn every_regression_file_is_checked() {
    let root = fuzz_dir().join("regressions");
    for target in std::fs::read_dir(&root).unwrap() {
        let target = target.unwrap();
        for file in std::fs::read_dir(target.path()).unwrap() {
            let (target, name) = (
                target.file_name().into_string().unwrap(),
                file.unwrap().file_name().into_string().unwrap(),
            );
            assert!(
                REGRESSIONS
                    .iter()
                    .any(|&(t, n, _)| t == target && n == name),
                "fuzz/regressions/{target}/{name} is not in REGRESSIONS"
            );
        }
    }
}

#[test]
fn crafted_seeds_load() {
    for name in [
        "tiny-tokenizer-smollm.gguf",
        "tiny-tokenizer-llama-bpe.gguf",
    ] {
        let tokenizer = gguf(&input("corpus", "gguf", name)).expect(name);
        let ids = tokenizer.encode("Hello world 123<|im_end|>").expect(name);
        assert!(!ids.is_empty(), "{name}");
    }
    for name in ["tiny-tied", "tiny-untied"] {
        safetensors_model(&input("corpus", "safetensors_model", name)).expect(name);
    }
    checkpoint(&input("corpus", "checkpoint", "world1")).expect("world1");
}
