//! The tokenizer against transformers' output for SmolLM2's GGUF (fixtures written by
//! `fixtures/tokenizer/generate.py`), chat templates, and the Hugging Face directory round trip.

mod common;

use std::fs::File;
use std::path::Path;
use std::sync::LazyLock;

use candle_core::quantized::gguf_file::{Content, Value};
use ferrotune::tokenizer::{ChatMessage, Tokenizer, TokenizerError};
use serde::Deserialize;

static SMOLLM2_GGUF: LazyLock<Content> = LazyLock::new(|| {
    let path = common::smollm2_gguf();
    let mut file = File::open(&path).unwrap();
    Content::read(&mut file).unwrap()
});

static SMOLLM2: LazyLock<Tokenizer> =
    LazyLock::new(|| Tokenizer::from_gguf(&SMOLLM2_GGUF).unwrap());

/// SmolLM2's metadata with some keys replaced or removed.
fn smollm2_metadata_with(changes: &[(&str, Option<Value>)]) -> Content {
    let mut content = Content {
        magic: SMOLLM2_GGUF.magic,
        metadata: SMOLLM2_GGUF.metadata.clone(),
        tensor_infos: Default::default(),
        tensor_data_offset: 0,
    };
    for (key, value) in changes {
        match value {
            Some(v) => content.metadata.insert((*key).to_owned(), v.clone()),
            None => content.metadata.remove(*key),
        };
    }
    content
}

#[derive(Deserialize)]
struct EncodeFixture {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    decoded_skip_special: Vec<String>,
}

fn encode_fixture(name: &str) -> EncodeFixture {
    let text = std::fs::read_to_string(common::fixtures().join("tokenizer").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[derive(Deserialize)]
struct ChatFixture {
    llama3_style: String,
    features: String,
    cases: Vec<ChatCase>,
}

#[derive(Deserialize)]
struct ChatCase {
    name: String,
    template: String,
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    date_string: Option<String>,
    rendered: String,
}

fn chat_fixture() -> ChatFixture {
    let text = std::fs::read_to_string(common::fixtures().join("tokenizer/chat.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn assert_encodes_like(tokenizer: &Tokenizer, fixture: &EncodeFixture) {
    for (i, text) in fixture.texts.iter().enumerate() {
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(ids, fixture.ids[i], "ids of {text:?}");
        assert_eq!(
            tokenizer.decode(&ids).unwrap(),
            fixture.decoded_skip_special[i],
            "decode of {text:?}"
        );
    }
}

#[test]
fn smollm2_gguf_encodes_like_the_reference() {
    assert_encodes_like(&SMOLLM2, &encode_fixture("encode_smollm.json"));
}

#[test]
fn decode_round_trips_text_without_special_tokens() {
    let fixture = encode_fixture("encode_smollm.json");
    let plain: Vec<&String> = fixture.texts.iter().filter(|t| !t.contains("<|")).collect();
    assert!(plain.len() > 20);
    for text in plain {
        assert_eq!(
            &SMOLLM2.decode(&SMOLLM2.encode(text).unwrap()).unwrap(),
            text
        );
    }
}

#[test]
fn digits_are_split_before_byte_level_splitting() {
    // "a", "ĠĠ", "2", "0", "2", "4": the two spaces stay one token, as in SmolLM2's own tokenizer.
    let ids = SMOLLM2.encode("a  2024").unwrap();
    assert_eq!(ids, [81, 256, 34, 32, 34, 36]);
}

#[test]
fn llama_bpe_pre_tokenizer_encodes_like_the_reference() {
    let content = smollm2_metadata_with(&[(
        "tokenizer.ggml.pre",
        Some(Value::String("llama-bpe".into())),
    )]);
    let tokenizer = Tokenizer::from_gguf(&content).unwrap();
    let fixture = encode_fixture("encode_llama_bpe.json");
    assert_encodes_like(&tokenizer, &fixture);
    // Llama 3 keeps runs of up to three digits together where SmolLM2 splits every digit.
    let i = fixture.texts.iter().position(|t| t == "a  2024").unwrap();
    assert_ne!(fixture.ids[i], SMOLLM2.encode("a  2024").unwrap());
}

#[test]
fn special_ids_and_strings() {
    let t = &*SMOLLM2;
    assert_eq!(t.vocab_size(), 49152);
    assert_eq!(t.bos_token(), Some("<|im_start|>"));
    assert_eq!(t.eos_token(), "<|im_end|>");
    assert_eq!(t.eos_id(), 2);
    assert_eq!(t.pad_id(), 2);
    // <|endoftext|> (0) and <|im_end|> (2) both end generation.
    assert_eq!(t.stop_ids(), [0, 2]);
    assert!(t.is_stop(2) && !t.is_stop(1));
    assert_eq!(t.model_max_length(), Some(8192));
    assert_eq!(t.encode("<|im_start|>user").unwrap(), [1, 4093]);
    let err = t.decode(&[5, 49152]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "token id 49152 is outside the vocabulary (49152 tokens)"
    );
}

#[test]
fn pad_falls_back_to_eos() {
    let content = smollm2_metadata_with(&[
        ("tokenizer.ggml.padding_token_id", None),
        ("tokenizer.ggml.eos_token_id", Some(Value::U32(0))),
    ]);
    let t = Tokenizer::from_gguf(&content).unwrap();
    assert_eq!(
        (t.eos_id(), t.pad_id(), t.eos_token()),
        (0, 0, "<|endoftext|>")
    );
}

#[test]
fn unsupported_or_broken_gguf_metadata_is_named() {
    let err = |changes: &[(&str, Option<Value>)]| {
        Tokenizer::from_gguf(&smollm2_metadata_with(changes)).unwrap_err()
    };
    let e = err(&[("tokenizer.ggml.pre", Some(Value::String("qwen2".into())))]);
    assert!(matches!(e, TokenizerError::UnsupportedPreTokenizer { .. }));
    assert_eq!(
        e.to_string(),
        "GGUF `tokenizer.ggml.pre` is `qwen2`: supported are smollm, llama-bpe, llama3, llama-v3"
    );
    let e = err(&[("tokenizer.ggml.model", Some(Value::String("llama".into())))]);
    assert_eq!(
        e.to_string(),
        "GGUF `tokenizer.ggml.model` is `llama`: only `gpt2` (byte-level BPE) is supported"
    );
    let e = err(&[("tokenizer.ggml.merges", None)]);
    assert_eq!(
        e.to_string(),
        "GGUF metadata `tokenizer.ggml.merges`: is missing"
    );
    let e = err(&[("tokenizer.ggml.eos_token_id", Some(Value::U32(60000)))]);
    assert_eq!(
        e.to_string(),
        "GGUF metadata `tokenizer.ggml.eos_token_id`: id 60000 is outside the vocabulary (49152 tokens)"
    );
    let e = err(&[("tokenizer.ggml.pre", Some(Value::U32(1)))]);
    assert!(
        e.to_string()
            .starts_with("GGUF metadata `tokenizer.ggml.pre`: must be a string"),
        "{e}"
    );
}

#[test]
fn chat_rendering_matches_apply_chat_template() {
    let fixture = chat_fixture();
    assert_eq!(fixture.cases.len(), 12);
    for case in &fixture.cases {
        let mut tokenizer = SMOLLM2.clone();
        match case.template.as_str() {
            "model" => {}
            "llama3_style" => tokenizer.set_chat_template(&fixture.llama3_style).unwrap(),
            "features" => tokenizer.set_chat_template(&fixture.features).unwrap(),
            other => panic!("unknown template {other}"),
        }
        tokenizer.set_date_string(case.date_string.clone());
        let rendered = tokenizer
            .render_chat(&case.messages, case.add_generation_prompt)
            .unwrap();
        assert_eq!(rendered, case.rendered, "case {}", case.name);
    }
}

#[test]
fn llama3_style_template_dates_its_system_block_today_by_default() {
    let mut tokenizer = SMOLLM2.clone();
    tokenizer
        .set_chat_template(&chat_fixture().llama3_style)
        .unwrap();
    let rendered = tokenizer
        .render_chat(&[ChatMessage::new("user", "hi")], true)
        .unwrap();
    let today = jiff::fmt::strtime::format("%d %b %Y", &jiff::Zoned::now()).unwrap();
    assert!(
        rendered.contains(&format!("Today: {today}\n")),
        "{rendered}"
    );
}

#[test]
fn template_errors_are_reported() {
    let mut tokenizer = SMOLLM2.clone();
    tokenizer
        .set_chat_template(&chat_fixture().llama3_style)
        .unwrap();
    let messages = [
        ChatMessage::new("user", "hi"),
        ChatMessage::new("tool", "{}"),
    ];
    let err = tokenizer
        .render_chat(&messages, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Only user and assistant turns may follow the system turn, got tool"),
        "{err}"
    );

    let err = tokenizer
        .set_chat_template("{% for m in messages %}")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("chat template: "), "{err}");

    let bare =
        Tokenizer::from_gguf(&smollm2_metadata_with(&[("tokenizer.chat_template", None)])).unwrap();
    let err = bare.render_chat(&messages, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the model has no chat template: set `prompt.chat_template` in the config"
    );
}

fn assert_same_tokenizer(a: &Tokenizer, b: &Tokenizer) {
    assert_encodes_like(b, &encode_fixture("encode_smollm.json"));
    assert_eq!(a.vocab_size(), b.vocab_size());
    assert_eq!(a.special_tokens(), b.special_tokens());
    assert_eq!(
        (a.eos_id(), a.pad_id(), a.stop_ids()),
        (b.eos_id(), b.pad_id(), b.stop_ids())
    );
    assert_eq!(a.model_max_length(), b.model_max_length());
    let messages = [
        ChatMessage::new("user", "Summarise: Ann: hi"),
        ChatMessage::new("assistant", "Ann says hi."),
    ];
    assert_eq!(
        a.render_chat(&messages, false).unwrap(),
        b.render_chat(&messages, false).unwrap()
    );
}

#[test]
fn save_hf_then_from_hf_dir_is_the_same_tokenizer() {
    // Kept under target/tmp so `fixtures/tokenizer/check_saved.py` can load it with transformers.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("smollm2-tokenizer");
    let _ = std::fs::remove_dir_all(&dir);
    SMOLLM2.save_hf(&dir).unwrap();
    for file in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let reloaded = Tokenizer::from_hf_dir(&dir).unwrap();
    assert_same_tokenizer(&SMOLLM2, &reloaded);
    let map: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("special_tokens_map.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        map,
        serde_json::json!({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                           "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"})
    );
}

fn saved_dir(tmp: &tempfile::TempDir) -> (std::path::PathBuf, serde_json::Value) {
    let dir = tmp.path().join("tok");
    SMOLLM2.save_hf(&dir).unwrap();
    let config =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap())
            .unwrap();
    (dir, config)
}

fn write_json(path: &Path, value: &serde_json::Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

#[test]
fn hf_dir_accepts_added_token_objects_named_templates_and_config_eos_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, mut config) = saved_dir(&tmp);
    let template = config["chat_template"].clone();
    config["chat_template"] = serde_json::json!([
        {"name": "tool_use", "template": "{{ raise_exception('not this one') }}"},
        {"name": "default", "template": template},
    ]);
    config["eos_token"] =
        serde_json::json!({"__type": "AddedToken", "content": "<|im_end|>", "lstrip": false});
    config.as_object_mut().unwrap().remove("pad_token");
    config.as_object_mut().unwrap().remove("model_max_length");
    write_json(&dir.join("tokenizer_config.json"), &config);
    write_json(
        &dir.join("generation_config.json"),
        &serde_json::json!({"eos_token_id": [2, 7]}),
    );
    write_json(
        &dir.join("config.json"),
        &serde_json::json!({"eos_token_id": 2, "max_position_embeddings": 2048}),
    );

    let t = Tokenizer::from_hf_dir(&dir).unwrap();
    assert_eq!(t.eos_token(), "<|im_end|>");
    assert_eq!(t.pad_id(), 2);
    assert_eq!(t.stop_ids(), [0, 2, 7]);
    assert_eq!(t.model_max_length(), Some(2048));
    let messages = [ChatMessage::new("user", "hi")];
    assert_eq!(
        t.render_chat(&messages, true).unwrap(),
        SMOLLM2.render_chat(&messages, true).unwrap()
    );

    // chat_template.jinja, when present, is the template.
    std::fs::write(
        dir.join("chat_template.jinja"),
        "{{ messages[0].content }}!\n",
    )
    .unwrap();
    assert_eq!(
        Tokenizer::from_hf_dir(&dir)
            .unwrap()
            .render_chat(&messages, true)
            .unwrap(),
        "hi!"
    );
}

#[test]
fn hf_dir_errors_name_the_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Tokenizer::from_hf_dir(tmp.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: has no tokenizer.json", tmp.path().display())
    );

    let (dir, config) = saved_dir(&tmp);
    let config_path = dir.join("tokenizer_config.json");
    let with = |field: &str, value: serde_json::Value| {
        let mut c = config.clone();
        c[field] = value;
        write_json(&config_path, &c);
        Tokenizer::from_hf_dir(&dir).unwrap_err().to_string()
    };
    let shown = config_path.display();
    assert_eq!(
        with(
            "chat_template",
            serde_json::json!([{"name": "rag", "template": "x"}])
        ),
        format!("{shown}: `chat_template` lists no template named `default` (it has: rag)")
    );
    assert_eq!(
        with("eos_token", serde_json::json!(5)),
        format!(
            "{shown}: `eos_token` must be a string or an object with a `content` string, found 5"
        )
    );
    assert_eq!(
        with("pad_token", serde_json::json!("<pad>")),
        format!("{shown}: the pad token `<pad>` is not in the vocabulary")
    );
    write_json(&config_path, &config);
    write_json(
        &dir.join("generation_config.json"),
        &serde_json::json!({"eos_token_id": "2"}),
    );
    assert_eq!(
        Tokenizer::from_hf_dir(&dir).unwrap_err().to_string(),
        format!(
            "{}: `eos_token_id` must be a token id or a list of token ids",
            dir.join("generation_config.json").display()
        )
    );
}
