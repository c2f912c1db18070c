//! Loading pretrained weights: GGUF (dequantisation, llama.cpp → Hugging Face layout), Hugging Face
//! directories (sharded and not), the Hub cache, and every validation error a user can meet.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use ferrotune::model::load::hub::{self, HubOptions};
use ferrotune::model::load::{
    LoadError, LoadedModel, ModelFiles, ModelSource, expected_tensors, load,
};
use ferrotune_config::ModelConfig;

fn tiny_dir() -> PathBuf {
    common::fixtures().join("tiny-llama")
}

fn untied_dir() -> PathBuf {
    common::fixtures().join("tiny-llama-untied")
}

fn tiny_gguf() -> PathBuf {
    common::fixtures().join("gguf/tiny-llama.gguf")
}

fn load_dir(dir: &Path) -> LoadedModel {
    load(&ModelSource::HfDir(dir.to_path_buf()), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Both models have the same tensor names and bit-identical values.
fn assert_same_tensors(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) {
    let mut names: Vec<_> = a.keys().collect();
    names.sort();
    let mut other: Vec<_> = b.keys().collect();
    other.sort();
    assert_eq!(names, other);
    for name in names {
        assert_eq!(a[name].dims(), b[name].dims(), "{name}");
        let (x, y) = (values(&a[name]), values(&b[name]));
        if let Some(i) = (0..x.len()).find(|&i| x[i].to_bits() != y[i].to_bits()) {
            panic!(
                "{name} differs first at flat index {i}: {} vs {}",
                x[i], y[i]
            );
        }
    }
}

/// The message of an error, with its context chain.
fn message(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

#[test]
fn tiny_gguf_dequantises_exactly_like_the_gguf_package() {
    let model = load(&ModelSource::Gguf(tiny_gguf()), &Device::Cpu).unwrap();
    let cfg = &model.config;
    assert_eq!(
        (
            cfg.vocab_size,
            cfg.hidden_size,
            cfg.intermediate_size,
            cfg.num_hidden_layers
        ),
        (64, 32, 64, 1),
        "vocab_size comes from the token list when llama.vocab_size is absent"
    );
    assert_eq!(
        (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim
        ),
        (4, 2, 8)
    );
    assert_eq!(
        (
            cfg.rope_theta,
            cfg.rms_norm_eps,
            cfg.max_position_embeddings
        ),
        (10000.0, 1e-5, 128)
    );
    assert!(!cfg.tie_word_embeddings, "the file has output.weight");
    assert_eq!(
        (cfg.bos_token_id, cfg.eos_token_ids.as_slice()),
        (Some(1), &[2u32][..])
    );
    assert_eq!(model.files, ModelFiles::Gguf(tiny_gguf()));
    assert_eq!(model.name, "tiny-llama.gguf");
    // Q4_1, Q8_0, F16 and F32 tensors, q/k un-permuted: equal to gguf.quants.dequantize, bit for bit.
    let expected = candle_core::safetensors::load(
        common::fixtures().join("gguf/tiny-llama.dequantized.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(expected.len(), expected_tensors(cfg).len());
    assert_same_tensors(&model.tensors, &expected);
}

#[derive(serde::Deserialize)]
struct Checksum {
    shape: Vec<usize>,
    sum: f64,
    sum_sq: f64,
    first8: Vec<f64>,
    row_sums_first8: Option<Vec<f64>>,
}

/// Neumaier-compensated sum: within an ulp or so of the exact sum, like PyTorch's pairwise sums.
fn exact_sum(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut carry) = (0.0f64, 0.0f64);
    for x in xs {
        let t = sum + x;
        carry += if sum.abs() >= x.abs() {
            (sum - t) + x
        } else {
            (x - t) + sum
        };
        sum = t;
    }
    sum + carry
}

#[test]
fn smollm2_gguf_matches_transformers_gguf_loader() {
    let path = common::smollm2_gguf();
    let source = ModelSource::from_config(&ModelConfig {
        path: Some(path.display().to_string()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(source, ModelSource::Gguf(path.clone()));
    let model = load(&source, &Device::Cpu).unwrap();
    let cfg = &model.config;
    assert_eq!(
        (
            cfg.num_hidden_layers,
            cfg.hidden_size,
            cfg.intermediate_size
        ),
        (30, 576, 1536)
    );
    assert_eq!(
        (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim
        ),
        (9, 3, 64)
    );
    assert_eq!((cfg.vocab_size, cfg.max_position_embeddings), (49152, 8192));
    assert_eq!((cfg.rope_theta, cfg.rms_norm_eps), (100000.0, 1e-5));
    assert!(cfg.tie_word_embeddings && cfg.rope_scaling.is_none());
    assert_eq!(
        (cfg.bos_token_id, cfg.eos_token_ids.as_slice()),
        (Some(1), &[2u32][..])
    );
    assert_eq!(model.tensors.len(), 1 + 30 * 9 + 1);

    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("gguf/smollm2_reference.json")).unwrap(),
    )
    .unwrap();
    let hf = &reference["config"];
    assert_eq!(hf["num_hidden_layers"], 30);
    assert_eq!(hf["vocab_size"], cfg.vocab_size);
    assert_eq!(hf["head_dim"], cfg.head_dim);
    assert_eq!(
        hf["rms_norm_eps"].as_f64().unwrap() as f32,
        cfg.rms_norm_eps as f32
    );
    let sums: HashMap<String, Checksum> =
        serde_json::from_value(reference["tensors"].clone()).unwrap();
    assert!(
        sums.contains_key("model.layers.0.self_attn.q_proj.weight")
            && sums.contains_key("model.layers.0.self_attn.k_proj.weight")
    );
    for (name, want) in &sums {
        let t = &model.tensors[name];
        assert_eq!(t.dims(), want.shape.as_slice(), "{name}");
        let v = values(t);
        let sum = exact_sum(v.iter().map(|&x| x as f64));
        let sum_sq = exact_sum(v.iter().map(|&x| (x as f64) * (x as f64)));
        // Same f32 values, summed in f64 in another order: only the last bits may differ.
        assert!(
            (sum - want.sum).abs() <= 1e-9 * want.sum_sq.max(1.0),
            "{name}: sum {sum} vs {}",
            want.sum
        );
        assert!(
            (sum_sq - want.sum_sq).abs() <= 1e-12 * want.sum_sq,
            "{name}: sum_sq {sum_sq} vs {}",
            want.sum_sq
        );
        // f32 values written as decimals: equal once read back as f32.
        let want8: Vec<f32> = want.first8.iter().map(|&x| x as f32).collect();
        assert_eq!(v[..8], want8, "{name}");
        // Row sums change under a row permutation: they prove q/k are in Hugging Face order.
        if let Some(rows) = &want.row_sums_first8 {
            let cols = t.dims()[1];
            for (r, want_row) in rows.iter().enumerate() {
                let got: f64 = v[r * cols..(r + 1) * cols].iter().map(|&x| x as f64).sum();
                assert!(
                    (got - want_row).abs() < 1e-9,
                    "{name} row {r}: {got} vs {want_row}"
                );
            }
        }
    }
}

#[test]
fn sharded_directory_equals_its_unsharded_copy() {
    let sharded = load_dir(&tiny_dir());
    assert!(sharded.config.tie_word_embeddings);
    assert_eq!(
        (
            sharded.config.num_hidden_layers,
            sharded.config.vocab_size,
            sharded.config.head_dim
        ),
        (2, 384, 16)
    );
    assert_eq!(sharded.tensors.len(), 20);
    assert!(!sharded.tensors.contains_key("lm_head.weight"));
    assert_eq!(sharded.files, ModelFiles::HfDir(tiny_dir()));
    assert_eq!(sharded.name, "tiny-llama");

    // One file holding every tensor of both shards, read and written with candle's own safetensors code.
    let tmp = tempfile::tempdir().unwrap();
    let mut all = HashMap::new();
    for shard in [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        all.extend(candle_core::safetensors::load(tiny_dir().join(shard), &Device::Cpu).unwrap());
    }
    candle_core::safetensors::save(&all, tmp.path().join("model.safetensors")).unwrap();
    std::fs::copy(
        tiny_dir().join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let single = load_dir(tmp.path());
    assert_eq!(single.config, sharded.config);
    assert_same_tensors(&single.tensors, &sharded.tensors);
}

#[test]
fn untied_variant_has_lm_head_and_llama3_rope_scaling() {
    let model = load_dir(&untied_dir());
    let cfg = &model.config;
    assert!(!cfg.tie_word_embeddings);
    let scaling = cfg.rope_scaling.as_ref().expect("llama3 rope scaling");
    assert_eq!(
        (scaling.factor, scaling.original_max_position_embeddings),
        (8.0, 64)
    );
    assert_eq!(model.tensors["lm_head.weight"].dims(), &[384, 64]);
    assert_ne!(
        values(&model.tensors["lm_head.weight"]),
        values(&model.tensors["model.embed_tokens.weight"])
    );
}

/// A copy of the untied fixture whose weights `edit` changes.
fn edited_copy(edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mut tensors =
        candle_core::safetensors::load(untied_dir().join("model.safetensors"), &Device::Cpu)
            .unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
    std::fs::copy(
        untied_dir().join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    tmp
}

fn load_error(dir: &Path) -> (anyhow::Error, String) {
    let err = load(&ModelSource::HfDir(dir.to_path_buf()), &Device::Cpu).unwrap_err();
    let msg = message(&err);
    (err, msg)
}

#[test]
fn missing_tensor_is_named_with_its_file() {
    let dir = edited_copy(|t| {
        t.remove("model.layers.0.mlp.up_proj.weight");
    });
    let (err, msg) = load_error(dir.path());
    assert!(
        matches!(err.downcast_ref(), Some(LoadError::MissingTensor { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("model.layers.0.mlp.up_proj.weight") && msg.contains("model.safetensors"),
        "{msg}"
    );

    let dir = edited_copy(|t| {
        t.remove("lm_head.weight");
    });
    let (_, msg) = load_error(dir.path());
    assert!(
        msg.contains("lm_head.weight") && msg.contains("tie_word_embeddings is false"),
        "{msg}"
    );
}

#[test]
fn wrong_shape_names_tensor_shape_and_expected_shape() {
    let dir = edited_copy(|t| {
        let k = t["model.layers.0.self_attn.k_proj.weight"]
            .narrow(0, 0, 16)
            .unwrap();
        t.insert("model.layers.0.self_attn.k_proj.weight".into(), k);
    });
    let (err, msg) = load_error(dir.path());
    assert!(
        matches!(err.downcast_ref(), Some(LoadError::WrongShape { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("model.layers.0.self_attn.k_proj.weight")
            && msg.contains("[16, 64]")
            && msg.contains("[32, 64]"),
        "{msg}"
    );
}

#[test]
fn unknown_extra_tensors_are_ignored_and_half_precision_is_widened() {
    let dir = edited_copy(|t| {
        t.insert(
            "model.layers.0.self_attn.rotary_emb.inv_freq".into(),
            Tensor::ones(8, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        let norm = t["model.norm.weight"]
            .to_dtype(candle_core::DType::BF16)
            .unwrap();
        t.insert("model.norm.weight".into(), norm);
    });
    let model = load_dir(dir.path());
    assert!(
        !model
            .tensors
            .contains_key("model.layers.0.self_attn.rotary_emb.inv_freq")
    );
    let reference = load_dir(&untied_dir());
    let want: Vec<f32> = values(&reference.tensors["model.norm.weight"])
        .iter()
        .map(|&x| half::bf16::from_f32(x).to_f32())
        .collect();
    assert_eq!(
        model.tensors["model.norm.weight"].dtype(),
        candle_core::DType::F32
    );
    assert_eq!(values(&model.tensors["model.norm.weight"]), want);
}

#[test]
fn directory_errors_say_what_a_model_directory_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let err = ModelSource::from_path(tmp.path()).unwrap_err();
    assert!(matches!(err, LoadError::NoConfigJson(_)));
    assert!(
        err.to_string().contains("has no config.json") && err.to_string().contains(".gguf"),
        "{err}"
    );

    std::fs::copy(
        untied_dir().join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let (err, msg) = load_error(tmp.path());
    assert!(
        matches!(err.downcast_ref(), Some(LoadError::NoWeights(_))),
        "{msg}"
    );
    assert!(msg.contains("model.safetensors.index.json"), "{msg}");

    let index = r#"{"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}"#;
    std::fs::write(tmp.path().join("model.safetensors.index.json"), index).unwrap();
    let (err, msg) = load_error(tmp.path());
    assert!(
        matches!(err.downcast_ref(), Some(LoadError::MissingShard { .. })),
        "{msg}"
    );
    assert!(msg.contains("model-00001-of-00002.safetensors"), "{msg}");

    let config = std::fs::read_to_string(untied_dir().join("config.json"))
        .unwrap()
        .replace("\"llama\"", "\"gpt2\"");
    std::fs::write(tmp.path().join("config.json"), config).unwrap();
    let (_, msg) = load_error(tmp.path());
    assert!(
        msg.contains("config.json") && msg.contains("model_type `gpt2` is not supported"),
        "{msg}"
    );
}

#[test]
fn model_config_paths_are_checked() {
    let source = |path: &str| {
        ModelSource::from_config(&ModelConfig {
            path: Some(path.into()),
            ..Default::default()
        })
    };
    let msg = message(&source("/nonexistent/model.gguf").unwrap_err());
    assert!(
        msg.contains("/nonexistent/model.gguf") && msg.contains("does not exist"),
        "{msg}"
    );
    let msg = message(&source("${FERROTUNE_SURELY_UNSET_MODEL_DIR}/m.gguf").unwrap_err());
    assert!(
        msg.contains("model.path") && msg.contains("FERROTUNE_SURELY_UNSET_MODEL_DIR"),
        "{msg}"
    );
    let not_gguf = common::fixtures().join("tiny-llama/config.json");
    let msg = message(&source(not_gguf.to_str().unwrap()).unwrap_err());
    assert!(
        msg.contains("is not a GGUF file") && msg.contains("config.json"),
        "{msg}"
    );
    assert_eq!(
        source(tiny_dir().to_str().unwrap()).unwrap(),
        ModelSource::HfDir(tiny_dir())
    );

    let hub = ModelConfig {
        hub: Some("HuggingFaceTB/SmolLM2-135M-Instruct".into()),
        revision: "v1".into(),
        ..Default::default()
    };
    let source = ModelSource::from_config(&hub).unwrap();
    assert_eq!(
        source,
        ModelSource::Hub {
            repo: "HuggingFaceTB/SmolLM2-135M-Instruct".into(),
            revision: "v1".into()
        }
    );
    assert_eq!(source.default_name(), "HuggingFaceTB/SmolLM2-135M-Instruct");
    let both = ModelConfig {
        path: Some("m.gguf".into()),
        ..hub
    };
    assert!(
        message(&ModelSource::from_config(&both).unwrap_err()).contains("exactly one of `path`")
    );
}

/// Rewrites the tiny GGUF with edited metadata and tensors, using candle's GGUF writer.
fn rewrite_gguf(
    dst: &Path,
    edit_meta: impl FnOnce(&mut HashMap<String, Value>),
    edit_tensors: impl FnOnce(&mut Vec<(String, QTensor)>),
) {
    let mut file = File::open(tiny_gguf()).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let mut meta = content.metadata.clone();
    edit_meta(&mut meta);
    let mut names: Vec<_> = content.tensor_infos.keys().cloned().collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = names
        .into_iter()
        .map(|n| {
            (
                n.clone(),
                content.tensor(&mut file, &n, &Device::Cpu).unwrap(),
            )
        })
        .collect();
    edit_tensors(&mut tensors);
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = File::create(dst).unwrap();
    gguf_file::write(&mut out, &meta_refs, &tensor_refs).unwrap();
}

fn gguf_error(path: &Path) -> (anyhow::Error, String) {
    let err = load(&ModelSource::Gguf(path.to_path_buf()), &Device::Cpu).unwrap_err();
    let msg = message(&err);
    (err, msg)
}

#[test]
fn gguf_errors_name_the_file_and_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let same = tmp.path().join("same.gguf");
    rewrite_gguf(&same, |_| {}, |_| {});
    let reference = load(&ModelSource::Gguf(tiny_gguf()), &Device::Cpu).unwrap();
    assert_same_tensors(
        &load(&ModelSource::Gguf(same), &Device::Cpu)
            .unwrap()
            .tensors,
        &reference.tensors,
    );

    let rope_freqs = tmp.path().join("rope_freqs.gguf");
    rewrite_gguf(
        &rope_freqs,
        |_| {},
        |t| {
            let freqs = Tensor::ones(4, candle_core::DType::F32, &Device::Cpu).unwrap();
            t.push((
                "rope_freqs.weight".into(),
                QTensor::quantize(&freqs, GgmlDType::F32).unwrap(),
            ));
        },
    );
    let (err, msg) = gguf_error(&rope_freqs);
    assert!(
        matches!(err.downcast_ref(), Some(LoadError::Unsupported { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("rope_freqs.gguf") && msg.contains("rope_freqs.weight"),
        "{msg}"
    );

    let qwen = tmp.path().join("qwen.gguf");
    rewrite_gguf(
        &qwen,
        |m| {
            m.insert("general.architecture".into(), Value::String("qwen2".into()));
        },
        |_| {},
    );
    let (_, msg) = gguf_error(&qwen);
    assert!(
        msg.contains("qwen.gguf") && msg.contains("architecture `qwen2` is not supported"),
        "{msg}"
    );

    let no_up = tmp.path().join("no_up.gguf");
    rewrite_gguf(
        &no_up,
        |_| {},
        |t| t.retain(|(name, _)| name != "blk.0.ffn_up.weight"),
    );
    let (err, msg) = gguf_error(&no_up);
    assert!(
        matches!(err.downcast_ref(), Some(LoadError::MissingTensor { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("blk.0.ffn_up.weight") && msg.contains("model.layers.0.mlp.up_proj.weight"),
        "{msg}"
    );

    let no_blocks = tmp.path().join("no_blocks.gguf");
    rewrite_gguf(
        &no_blocks,
        |m| {
            m.remove("llama.block_count");
        },
        |_| {},
    );
    let (_, msg) = gguf_error(&no_blocks);
    assert!(
        msg.contains("no_blocks.gguf") && msg.contains("llama.block_count"),
        "{msg}"
    );

    let wrong = tmp.path().join("wrong.gguf");
    rewrite_gguf(
        &wrong,
        |m| {
            m.insert("llama.feed_forward_length".into(), Value::U32(96));
        },
        |_| {},
    );
    let (err, msg) = gguf_error(&wrong);
    assert!(
        matches!(err.downcast_ref(), Some(LoadError::WrongShape { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("blk.0.ffn_gate.weight")
            && msg.contains("[64, 32]")
            && msg.contains("[96, 32]"),
        "{msg}"
    );
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Lays out the tiny model as the Hub cache stores `tiny/llama` at `main`.
fn hub_cache(hf_home: &Path) -> PathBuf {
    let repo = hf_home.join("hub/models--tiny--llama");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snapshot).unwrap();
    for entry in std::fs::read_dir(tiny_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|e| e == "json" || e == "safetensors")
            && !path.ends_with("reference.safetensors")
        {
            std::fs::copy(&path, snapshot.join(path.file_name().unwrap())).unwrap();
        }
    }
    snapshot
}

/// Hub options for `hf_home` whose endpoint refuses connections, so any network use fails.
fn unreachable_hub(hf_home: &Path, offline: bool) -> HubOptions {
    let home = hf_home.display().to_string();
    let mut options = HubOptions::from_vars(|key| (key == "HF_HOME").then(|| home.clone()));
    options.endpoint = Some("http://127.0.0.1:9".into());
    options.offline = offline;
    options
}

#[test]
fn hub_model_loads_offline_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshot = hub_cache(tmp.path());
    let options = unreachable_hub(tmp.path(), false);
    assert_eq!(options.cache_dir, tmp.path().join("hub"));
    let dir = hub::fetch("tiny/llama", "main", &options).unwrap();
    assert_eq!(dir, snapshot);
    let from_hub = load_dir(&dir);
    assert_same_tensors(&from_hub.tensors, &load_dir(&tiny_dir()).tensors);
    assert!(dir.join("tokenizer.json").is_file() && dir.join("tokenizer_config.json").is_file());
    assert_eq!(
        hub::fetch("tiny/llama", COMMIT, &unreachable_hub(tmp.path(), true)).unwrap(),
        snapshot
    );
}

#[test]
fn hub_errors_name_the_repo_and_what_to_check() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshot = hub_cache(tmp.path());
    // A shard missing from the cache while offline; then an empty cache and a Hub that cannot be reached.
    std::fs::remove_file(snapshot.join("model-00002-of-00002.safetensors")).unwrap();
    let msg =
        message(&hub::fetch("tiny/llama", "main", &unreachable_hub(tmp.path(), true)).unwrap_err());
    assert!(
        msg.contains("`tiny/llama`")
            && msg.contains("HF_HUB_OFFLINE")
            && msg.contains(&tmp.path().display().to_string()),
        "{msg}"
    );
    let empty = tempfile::tempdir().unwrap();
    let msg = message(
        &hub::fetch("tiny/llama", "main", &unreachable_hub(empty.path(), false)).unwrap_err(),
    );
    for needle in [
        "`tiny/llama`",
        "revision `main`",
        "http://127.0.0.1:9",
        "HF_TOKEN",
        "HF_HUB_OFFLINE",
        "reaches the Hub",
    ] {
        assert!(msg.contains(needle), "{needle} missing from: {msg}");
    }
    let msg =
        message(&hub::fetch("not/a/repo", "main", &unreachable_hub(tmp.path(), true)).unwrap_err());
    assert!(
        msg.contains("not/a/repo") && msg.contains("owner/name"),
        "{msg}"
    );
}
