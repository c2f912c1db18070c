//! Exported models and adapters: round trips through the loader, bf16 rounding, sharding, the
//! files transformers and PEFT read, and the errors for inconsistent inputs.
//!
//! `writes_the_course_output_layout` leaves its output in `$FERROTUNE_EXPORT_SAMPLE_DIR` when that is
//! set, for `scripts/check_hf_outputs.py` to load with transformers and PEFT.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use ferrotune::model::config::LlamaConfig;
use ferrotune::model::export::{
    AdapterSpec, ExportDtype, write_hf_model, write_hf_model_sharded, write_peft_adapter,
    write_safetensors,
};
use ferrotune::model::load::{LoadedModel, ModelSource, load};
use ferrotune::model::params::ParamId;
use ferrotune_config::TargetModule;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn tiny_dir() -> PathBuf {
    common::fixtures().join("tiny-llama")
}

fn load_dir(dir: &Path) -> LoadedModel {
    load(&ModelSource::HfDir(dir.to_path_buf()), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// The model's tensors as an export takes them, sorted by name.
fn named(model: &LoadedModel) -> Vec<(String, Tensor)> {
    let mut out: Vec<_> = model
        .tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn random(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> Tensor {
    let data: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Header metadata and tensor dtypes of a safetensors file, read with the `safetensors` crate.
fn header(path: &Path) -> (HashMap<String, String>, HashMap<String, safetensors::Dtype>) {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let dtypes = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.dtype()))
        .collect();
    (meta.metadata().clone().unwrap_or_default(), dtypes)
}

fn assert_no_temp_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.contains(".tmp-"),
            "temporary file {name} left in {}",
            dir.display()
        );
    }
}

#[test]
fn f32_export_loads_back_bit_identical() {
    let model = load_dir(&tiny_dir());
    let out = tempfile::tempdir().unwrap();
    write_hf_model(out.path(), &model.config, &named(&model), ExportDtype::F32).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["config.json", "generation_config.json", "model.safetensors"]
    );
    let back = load_dir(out.path());
    assert_eq!(back.config, model.config);
    assert_eq!(back.tensors.len(), model.tensors.len());
    for (name, t) in &model.tensors {
        assert_eq!(values(&back.tensors[name]), values(t), "{name}");
    }
    let config = read_json(&out.path().join("config.json"));
    assert_eq!(
        (
            config["torch_dtype"].as_str(),
            config["tie_word_embeddings"].as_bool()
        ),
        (Some("float32"), Some(true))
    );
    let generation = read_json(&out.path().join("generation_config.json"));
    assert_eq!(
        generation,
        serde_json::json!({"bos_token_id": 1, "eos_token_id": 2})
    );
    let (meta, dtypes) = header(&out.path().join("model.safetensors"));
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    assert!(
        !dtypes.contains_key("lm_head.weight"),
        "tied embeddings store no lm_head"
    );
    assert!(dtypes.values().all(|d| *d == safetensors::Dtype::F32));
}

#[test]
fn bf16_export_rounds_to_nearest_even() {
    let model = load_dir(&common::fixtures().join("tiny-llama-untied"));
    let out = tempfile::tempdir().unwrap();
    write_hf_model(out.path(), &model.config, &named(&model), ExportDtype::Bf16).unwrap();
    let (_, dtypes) = header(&out.path().join("model.safetensors"));
    assert_eq!(dtypes.len(), model.tensors.len());
    assert!(dtypes.values().all(|d| *d == safetensors::Dtype::BF16));
    assert_eq!(
        read_json(&out.path().join("config.json"))["torch_dtype"],
        "bfloat16"
    );
    let back = load_dir(out.path());
    assert_eq!(back.config, model.config);
    for (name, t) in &model.tensors {
        let exact = values(t);
        let got = values(&back.tensors[name]);
        for (x, y) in exact.iter().zip(&got) {
            assert_eq!(*y, half::bf16::from_f32(*x).to_f32(), "{name}");
            assert!(
                (x - y).abs() <= x.abs() * 2f32.powi(-8),
                "{name}: {x} vs {y} beyond half a bf16 ulp"
            );
        }
    }
}

#[test]
fn large_models_are_sharded_with_an_index_and_stale_files_go() {
    let model = load_dir(&tiny_dir());
    let out = tempfile::tempdir().unwrap();
    write_hf_model_sharded(
        out.path(),
        &model.config,
        &named(&model),
        ExportDtype::F32,
        100_000,
    )
    .unwrap();
    let index = read_json(&out.path().join("model.safetensors.index.json"));
    let weight_map = index["weight_map"].as_object().unwrap();
    assert_eq!(weight_map.len(), model.tensors.len());
    let total: usize = model.tensors.values().map(|t| t.elem_count() * 4).sum();
    assert_eq!(index["metadata"]["total_size"], total);
    let mut shards: Vec<&str> = weight_map.values().map(|v| v.as_str().unwrap()).collect();
    shards.sort();
    shards.dedup();
    assert_eq!(shards.len(), 5, "{shards:?}");
    assert_eq!(shards[0], "model-00001-of-00005.safetensors");
    for shard in &shards {
        let size = std::fs::metadata(out.path().join(shard)).unwrap().len();
        // Every shard keeps to the limit, plus its JSON header.
        assert!(size < 100_000 + 2_000, "{shard} is {size} bytes");
    }
    let back = load_dir(out.path());
    for (name, t) in &model.tensors {
        assert_eq!(values(&back.tensors[name]), values(t), "{name}");
    }
    // Exporting again unsharded into the same directory removes the shards and the index.
    write_hf_model(out.path(), &model.config, &named(&model), ExportDtype::F32).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["config.json", "generation_config.json", "model.safetensors"]
    );
}

#[test]
fn export_rejects_tensors_that_do_not_fit_the_config() {
    let model = load_dir(&tiny_dir());
    let out = tempfile::tempdir().unwrap();
    let mut missing = named(&model);
    missing.retain(|(n, _)| n != "model.layers.1.mlp.up_proj.weight");
    let err = write_hf_model(out.path(), &model.config, &missing, ExportDtype::F32).unwrap_err();
    assert!(
        format!("{err:#}").contains("no tensor `model.layers.1.mlp.up_proj.weight`"),
        "{err:#}"
    );

    let mut wrong = named(&model);
    let k = wrong
        .iter_mut()
        .find(|(n, _)| n == "model.layers.0.self_attn.k_proj.weight")
        .unwrap();
    k.1 = k.1.t().unwrap();
    let err = write_hf_model(out.path(), &model.config, &wrong, ExportDtype::F32).unwrap_err();
    assert!(
        format!("{err:#}").contains("`model.layers.0.self_attn.k_proj.weight` has shape [64, 32]"),
        "{err:#}"
    );

    let mut extra = named(&model);
    extra.push((
        "model.layers.0.self_attn.q_proj.lora_A.weight".into(),
        Tensor::zeros((4, 64), DType::F32, &Device::Cpu).unwrap(),
    ));
    let err = write_hf_model(out.path(), &model.config, &extra, ExportDtype::F32).unwrap_err();
    assert!(
        format!("{err:#}").contains("lora_A.weight` is not a weight of a Llama model"),
        "{err:#}"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing is written when validation fails"
    );

    // A tied model given an lm_head (as training code may hold one) exports without it.
    let mut with_head = named(&model);
    with_head.push((
        "lm_head.weight".into(),
        model.tensors["model.embed_tokens.weight"].clone(),
    ));
    write_hf_model(out.path(), &model.config, &with_head, ExportDtype::F32).unwrap();
    assert!(
        !header(&out.path().join("model.safetensors"))
            .1
            .contains_key("lm_head.weight")
    );
}

/// Seeded LoRA matrices for q_proj and v_proj of every layer, PEFT-named.
fn adapter(config: &LlamaConfig, r: usize, seed: u64) -> Vec<(String, Tensor)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for layer in 0..config.num_hidden_layers {
        for target in [TargetModule::QProj, TargetModule::VProj] {
            let rows = if target == TargetModule::QProj {
                config.num_attention_heads
            } else {
                config.num_key_value_heads
            };
            out.push((
                ParamId::LoraA(layer, target).peft_name().unwrap(),
                random(&mut rng, (r, config.hidden_size)),
            ));
            out.push((
                ParamId::LoraB(layer, target).peft_name().unwrap(),
                random(&mut rng, (rows * config.head_dim, r)),
            ));
        }
    }
    out
}

fn spec(r: usize) -> AdapterSpec {
    AdapterSpec {
        r,
        alpha: 8.0,
        dropout: 0.1,
        target_modules: vec![TargetModule::VProj, TargetModule::QProj],
        base_model_name_or_path: tiny_dir().canonicalize().unwrap().display().to_string(),
    }
}

#[test]
fn peft_adapter_has_peft_names_shapes_and_config() {
    let config = load_dir(&tiny_dir()).config;
    let tensors = adapter(&config, 4, 11);
    let out = tempfile::tempdir().unwrap();
    write_peft_adapter(out.path(), &tensors, &spec(4)).unwrap();
    assert_no_temp_files(out.path());

    let cfg = read_json(&out.path().join("adapter_config.json"));
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(
        (
            cfg["r"].as_u64(),
            cfg["lora_alpha"].as_u64(),
            cfg["lora_dropout"].as_f64()
        ),
        (Some(4), Some(8), Some(0.1))
    );
    assert_eq!(
        cfg["target_modules"],
        serde_json::json!(["q_proj", "v_proj"])
    );
    assert_eq!(
        (cfg["bias"].as_str(), cfg["fan_in_fan_out"].as_bool()),
        (Some("none"), Some(false))
    );
    assert_eq!(
        (
            cfg["use_rslora"].as_bool(),
            cfg["use_dora"].as_bool(),
            cfg["inference_mode"].as_bool()
        ),
        (Some(false), Some(false), Some(true))
    );
    assert_eq!(
        cfg["base_model_name_or_path"],
        spec(4).base_model_name_or_path
    );

    let file = out.path().join("adapter_model.safetensors");
    let (meta, dtypes) = header(&file);
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    assert_eq!(dtypes.len(), 8);
    let back = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let a = &back["base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"];
    let b = &back["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"];
    assert_eq!((a.dims(), b.dims()), (&[4, 64][..], &[32, 4][..]));
    for (name, t) in &tensors {
        assert_eq!(values(&back[name]), values(t), "{name}");
    }
}

#[test]
fn peft_adapter_rejects_inconsistent_tensors() {
    let config = load_dir(&tiny_dir()).config;
    let out = tempfile::tempdir().unwrap();
    let err = |tensors: &[(String, Tensor)], spec: &AdapterSpec| {
        format!(
            "{:#}",
            write_peft_adapter(out.path(), tensors, spec).unwrap_err()
        )
    };

    let msg = err(&adapter(&config, 4, 1), &spec(8));
    assert!(msg.contains("not rank r = 8"), "{msg}");
    let mut only_a = adapter(&config, 4, 1);
    only_a.retain(|(n, _)| !n.ends_with("layers.0.self_attn.q_proj.lora_B.weight"));
    let msg = err(&only_a, &spec(4));
    assert!(
        msg.contains("model.layers.0.self_attn.q_proj")
            && msg.contains("one lora_A and one lora_B"),
        "{msg}"
    );
    let msg = err(
        &adapter(&config, 4, 1),
        &AdapterSpec {
            target_modules: vec![TargetModule::QProj],
            ..spec(4)
        },
    );
    assert!(
        msg.contains("v_proj") && msg.contains("not in target_modules"),
        "{msg}"
    );
    let plain = vec![(
        "model.layers.0.self_attn.q_proj.weight".to_string(),
        random(&mut ChaCha8Rng::seed_from_u64(2), (64, 64)),
    )];
    let msg = err(&plain, &spec(4));
    assert!(msg.contains("is not a PEFT LoRA tensor name"), "{msg}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn safetensors_files_carry_extra_metadata_and_replace_atomically() {
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("state.safetensors");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let first = vec![("w".to_string(), random(&mut rng, (3, 5)))];
    let meta = BTreeMap::from([("step".to_string(), "12".to_string())]);
    write_safetensors(&path, &first, ExportDtype::F32, &meta).unwrap();
    let (header_meta, _) = header(&path);
    assert_eq!(
        header_meta,
        HashMap::from([("format".into(), "pt".into()), ("step".into(), "12".into())])
    );
    let second = vec![
        ("w".to_string(), random(&mut rng, (3, 5))),
        ("b".to_string(), random(&mut rng, (1, 5))),
    ];
    write_safetensors(&path, &second, ExportDtype::Bf16, &BTreeMap::new()).unwrap();
    let back = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back["w"].dtype(), DType::BF16);
    assert_eq!(
        values(&back["b"]),
        values(&second[1].1.to_dtype(DType::BF16).unwrap())
    );
    assert_no_temp_files(out.path());
    let twice = vec![first[0].clone(), first[0].clone()];
    let msg = format!(
        "{:#}",
        write_safetensors(&path, &twice, ExportDtype::F32, &meta).unwrap_err()
    );
    assert!(msg.contains("`w` is given twice"), "{msg}");
}

/// The course's output layout: `final_model/` (a transformers model with its tokenizer) and
/// `lora_adapters/` (a PEFT adapter on the base model).
#[test]
fn writes_the_course_output_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::env::var_os("FERROTUNE_EXPORT_SAMPLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let model = load_dir(&tiny_dir());
    let final_model = root.join("final_model");
    write_hf_model(
        &final_model,
        &model.config,
        &named(&model),
        ExportDtype::F32,
    )
    .unwrap();
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(tiny_dir().join(file), final_model.join(file)).unwrap();
    }
    let adapters = root.join("lora_adapters");
    write_peft_adapter(&adapters, &adapter(&model.config, 4, 42), &spec(4)).unwrap();
    for (dir, files) in [
        (
            &final_model,
            &["config.json", "generation_config.json", "model.safetensors"][..],
        ),
        (
            &adapters,
            &["adapter_config.json", "adapter_model.safetensors"][..],
        ),
    ] {
        for file in files {
            assert!(
                dir.join(file).is_file(),
                "{file} missing in {}",
                dir.display()
            );
        }
        assert_no_temp_files(dir);
    }
}
