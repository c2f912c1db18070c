//! Dataset rows, subsets, prompts with masked labels (on SmolLM2's real tokenizer), truncation,
//! batches and the distributed step layout.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use candle_core::quantized::gguf_file::Content;
use ferrotune::data::{
    BatchLayout, Location, Outcome, PromptBuilder, Row, Sample, collate, epoch_order, prepare,
    read_rows, split_rows,
};
use ferrotune::tokenizer::{ChatMessage, Tokenizer};
use ferrotune_config::{Config, DataConfig, DataFormat, PromptConfig, Truncation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

static SMOLLM2: LazyLock<Tokenizer> = LazyLock::new(|| {
    let mut file = File::open(common::smollm2_gguf()).unwrap();
    Tokenizer::from_gguf(&Content::read(&mut file).unwrap()).unwrap()
});

fn fixture(name: &str) -> PathBuf {
    common::fixtures().join("data").join(name)
}

fn read(path: &Path) -> Result<Vec<Row>, String> {
    read_rows(path, DataFormat::Auto, "dialogue", "summary").map_err(|e| e.to_string())
}

/// Writes `content` to `name` in a fresh directory and reads it.
fn read_text_file(
    name: &str,
    content: &[u8],
) -> (tempfile::TempDir, PathBuf, Result<Vec<Row>, String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    let rows = read(&path);
    (dir, path, rows)
}

fn expect_error(name: &str, content: &str, expected: &str) {
    let (_dir, path, rows) = read_text_file(name, content.as_bytes());
    assert_eq!(rows.unwrap_err(), format!("{}{expected}", path.display()));
}

#[test]
fn jsonl_json_and_parquet_give_the_same_rows() {
    let jsonl = read(&fixture("rows.jsonl")).unwrap();
    let json = read(&fixture("rows.json")).unwrap();
    let parquet = read(&fixture("rows.parquet")).unwrap();
    assert_eq!(jsonl.len(), 6);
    let texts = |rows: &[Row]| {
        rows.iter()
            .map(|r| (r.input.clone(), r.target.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&jsonl), texts(&json));
    assert_eq!(texts(&jsonl), texts(&parquet));
    assert_eq!(jsonl[1].target, "Lena has fed the cat twice.");
    assert!(jsonl[2].input.starts_with("José: ¿Vienes mañana?\n"));
    assert_eq!(
        (jsonl[5].location, json[5].location, parquet[5].location),
        (Location::Line(6), Location::Index(5), Location::Index(5))
    );
}

#[test]
fn format_can_be_forced_and_blank_lines_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.txt");
    std::fs::write(&path, "\n{\"text\": \"a: hi\", \"label\": \"A greets.\"}\n\n{\"text\": \"b\", \"label\": \"B.\"}\n").unwrap();
    let rows = read_rows(&path, DataFormat::Jsonl, "text", "label").unwrap();
    assert_eq!(rows.len(), 2);
    let bom = "\u{feff}[{\"dialogue\": \"a\", \"summary\": \"b\"}]";
    let (_dir, _, with_bom) = read_text_file("bom.json", bom.as_bytes());
    assert_eq!(with_bom.unwrap()[0].target, "b");
    assert_eq!(
        (rows[0].location, rows[1].location),
        (Location::Line(2), Location::Line(4))
    );
    let err = read(&path).unwrap_err();
    assert_eq!(
        err,
        format!(
            "{}: cannot tell the format from the extension: use .jsonl, .json or .parquet, or set data.format",
            path.display()
        )
    );
}

#[test]
fn jsonl_errors_name_the_line_and_the_problem() {
    let good = r#"{"dialogue": "a", "summary": "b"}"#;
    expect_error(
        "d.jsonl",
        &format!("{good}\n{{\"id\": 3, \"text\": \"x\", \"summary\": \"y\"}}\n"),
        ", line 2: missing field `dialogue` (data.input_field); the row has: id, summary, text",
    );
    expect_error(
        "d.jsonl",
        &format!("{good}\n{good}\n{{\"dialogue\": \"a\", \"summary\": 7}}"),
        ", line 3: field `summary` must be a string, found a number",
    );
    expect_error(
        "d.jsonl",
        "{\"dialogue\": null, \"summary\": \"s\"}",
        ", line 1: field `dialogue` must be a string, found null",
    );
    expect_error(
        "d.jsonl",
        &format!("{good}\n{{\"dialogue\": \"a\", \"summary\": \"b\""),
        ", line 2: invalid JSON: EOF while parsing an object at column 32",
    );
    expect_error(
        "d.jsonl",
        "[1, 2]",
        ", line 1: expected an object, found an array",
    );
    expect_error(
        "d.jsonl",
        &format!("{good}\n{{\"dialogue\": \"a\", \"summary\": \"  \"}}"),
        ", line 2: the target field `summary` is empty",
    );
    expect_error("d.jsonl", "", ": the file has no rows");
    expect_error("d.jsonl", "\n  \n", ": the file has no rows");

    let mut bytes = format!("{good}\n{good}\n").into_bytes();
    bytes.extend_from_slice(b"{\"dialogue\": \"caf\xe9\", \"summary\": \"s\"}\n");
    let (_dir, path, rows) = read_text_file("d.jsonl", &bytes);
    assert_eq!(
        rows.unwrap_err(),
        format!("{}, line 3: invalid UTF-8", path.display())
    );

    let missing = Path::new("/nonexistent/rows.jsonl");
    assert!(
        read(missing)
            .unwrap_err()
            .starts_with("/nonexistent/rows.jsonl: ")
    );
}

#[test]
fn json_errors_name_the_row_index() {
    expect_error(
        "d.json",
        r#"{"dialogue": "a", "summary": "b"}"#,
        ": expected a JSON array of objects, found an object",
    );
    expect_error(
        "d.json",
        r#"[{"dialogue": "a", "summary": "b"}, "x"]"#,
        ", row index 1: expected an object, found a string",
    );
    expect_error(
        "d.json",
        r#"[{"dialogue": "a", "summary": "b"}, {"dialogue": "a", "summary": ""}]"#,
        ", row index 1: the target field `summary` is empty",
    );
    expect_error(
        "d.json",
        "[\n{\"dialogue\": \"a\",\n \"summary\": }]",
        ", line 3: invalid JSON: expected value at column 13",
    );
    expect_error("d.json", "[]", ": the file has no rows");
}

#[test]
fn parquet_errors_name_the_column_or_row() {
    let show = |name: &str| fixture(name).display().to_string();
    let err = read_rows(
        &fixture("rows.parquet"),
        DataFormat::Auto,
        "text",
        "summary",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        format!(
            "{}: missing column `text` (data.input_field); the file has: id, dialogue, summary",
            show("rows.parquet")
        )
    );
    assert_eq!(
        read(&fixture("int_target.parquet")).unwrap_err(),
        format!(
            "{}, row index 0: field `summary` must be a string, found the value 1",
            show("int_target.parquet")
        )
    );
    assert_eq!(
        read(&fixture("null_target.parquet")).unwrap_err(),
        format!(
            "{}, row index 1: field `summary` must be a string, found null",
            show("null_target.parquet")
        )
    );
    let (_dir, path, rows) = read_text_file("fake.parquet", b"PAR1 not really");
    assert!(
        rows.unwrap_err()
            .starts_with(&format!("{}: not a readable Parquet file", path.display()))
    );
}

fn numbered_rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            input: format!("dialogue {i}"),
            target: format!("summary {i}"),
            location: Location::Line(i + 1),
        })
        .collect()
}

fn data_config(yaml: &str) -> DataConfig {
    let text = format!("model: {{path: m.gguf}}\ndata: {{train: t.jsonl, {yaml}}}\n");
    Config::from_yaml(&text, Path::new("test.yaml"), &[])
        .unwrap()
        .data
}

fn indices(rows: &[Row]) -> Vec<usize> {
    rows.iter()
        .map(|r| r.input.strip_prefix("dialogue ").unwrap().parse().unwrap())
        .collect()
}

#[test]
fn training_subset_is_the_seeded_shuffle_prefix() {
    // permutation(10, 42, 0) = [9, 7, 2, 5, 0, 1, 4, 3, 8, 6]
    let data = data_config("max_train_samples: 4");
    let split = split_rows(numbered_rows(10), Some(numbered_rows(5)), &data, 3).unwrap();
    assert_eq!(indices(&split.train), [9, 7, 2, 5]);
    assert_eq!(indices(&split.eval), [0, 1, 2]);

    let all = split_rows(numbered_rows(10), None, &data_config("shuffle_seed: 42"), 3).unwrap();
    assert_eq!(indices(&all.train), [9, 7, 2, 5, 0, 1, 4, 3, 8, 6]);
    assert!(all.eval.is_empty());
    let other_seed =
        split_rows(numbered_rows(10), None, &data_config("shuffle_seed: 43"), 3).unwrap();
    assert_ne!(indices(&other_seed.train), indices(&all.train));
}

#[test]
fn eval_fraction_holds_out_shuffled_training_rows() {
    let data = data_config("eval_fraction: 0.25, max_train_samples: 5");
    let split = split_rows(numbered_rows(10), None, &data, 200).unwrap();
    // ceil(0.25 * 10) = 3 held out: the first three of the shuffle; training takes from the rest.
    assert_eq!(indices(&split.eval), [9, 7, 2]);
    assert_eq!(indices(&split.train), [5, 0, 1, 4, 3]);
    let limited = split_rows(numbered_rows(10), None, &data, 2).unwrap();
    assert_eq!(indices(&limited.eval), [9, 7]);

    let err = split_rows(numbered_rows(1), None, &data, 2)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "data.eval_fraction: cannot hold out evaluation rows from a training file of 1 row"
    );
}

fn row(input: &str, target: &str) -> Row {
    Row {
        input: input.into(),
        target: target.into(),
        location: Location::Line(7),
    }
}

fn builder(config: &PromptConfig) -> PromptBuilder<'static> {
    PromptBuilder::new(&SMOLLM2, config).unwrap()
}

fn fits(outcome: Outcome) -> Sample {
    match outcome {
        Outcome::Fits(sample) => sample,
        other => panic!("expected a fitting sample, got {other:?}"),
    }
}

#[test]
fn labels_cover_exactly_the_summary_and_end_of_turn() {
    let rows = read(&fixture("rows.jsonl")).unwrap();
    let prompts = builder(&PromptConfig::default());
    for row in &rows {
        let sample = fits(prompts.sample(row, 512, Truncation::Drop).unwrap());
        let prompt_text = prompts.eval_prompt(row).unwrap();
        assert!(
            prompt_text.ends_with("<|im_end|>\n<|im_start|>assistant\n"),
            "{prompt_text}"
        );
        assert_eq!(
            sample.ids[..sample.prompt_len],
            SMOLLM2.encode(&prompt_text).unwrap()
        );
        // The targets: the summary's tokens, then <|im_end|>; the "\n" the template writes after it is dropped.
        assert_eq!(
            sample.target(),
            SMOLLM2
                .encode(&format!("{}<|im_end|>", row.target))
                .unwrap()
        );
        assert_eq!(
            *sample.ids.last().unwrap(),
            SMOLLM2.token_to_id("<|im_end|>").unwrap()
        );
        assert_eq!(SMOLLM2.decode(sample.target()).unwrap(), row.target);
    }
}

#[test]
fn eval_prompt_is_the_user_turn_with_the_generation_prompt() {
    let config = PromptConfig {
        system: Some("Be brief.".into()),
        ..PromptConfig::default()
    };
    let r = row("Ann: hi\nBo: hey", "Ann and Bo greet.");
    let expected = SMOLLM2
        .render_chat(
            &[
                ChatMessage::new("system", "Be brief."),
                ChatMessage::new("user", config.user_template.replace("{dialogue}", &r.input)),
            ],
            true,
        )
        .unwrap();
    assert_eq!(builder(&config).eval_prompt(&r).unwrap(), expected);
    assert!(expected.starts_with(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nYou are a helpful"
    ));
    assert!(expected.ends_with(
        "## Dialogue:\nAnn: hi\nBo: hey\n## Summary:<|im_end|>\n<|im_start|>assistant\n"
    ));
}

#[test]
fn eos_is_appended_when_the_template_writes_no_stop_token() {
    let config = PromptConfig {
        user_template: "{dialogue}".into(),
        chat_template: Some(
            "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}\
             {% if add_generation_prompt %}assistant: {% endif %}"
                .into(),
        ),
        ..PromptConfig::default()
    };
    let sample = fits(
        builder(&config)
            .sample(&row("Ann: hi", "Ann greets."), 64, Truncation::Drop)
            .unwrap(),
    );
    let mut expected = SMOLLM2.encode("Ann greets.\n").unwrap();
    expected.push(SMOLLM2.eos_id());
    assert_eq!(sample.target(), expected);
    assert_eq!(
        sample.ids[..sample.prompt_len],
        SMOLLM2.encode("user: Ann: hi\nassistant: ").unwrap()
    );
}

#[test]
fn templates_and_targets_that_break_masking_are_errors() {
    let config = PromptConfig {
        chat_template: Some(
            "{% if add_generation_prompt %}GEN {% endif %}{{ messages[-1].content }}".into(),
        ),
        ..PromptConfig::default()
    };
    let err = builder(&config)
        .sample(&row("a", "b"), 64, Truncation::Drop)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("line 7: the chat template's text for prompt + target does not start with"),
        "{err}"
    );

    let config = PromptConfig {
        chat_template: Some(
            "{% for m in messages if m.role != 'assistant' %}{{ m.content }}{% endfor %}".into(),
        ),
        ..PromptConfig::default()
    };
    let err = builder(&config)
        .sample(&row("a", "b"), 64, Truncation::Drop)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "line 7: the chat template does not write the target text into the assistant turn"
    );

    let err = builder(&PromptConfig::default())
        .sample(&row("a", "Done.<|im_end|> extra"), 512, Truncation::Drop)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "line 7: the target contains `<|im_end|>`, which ends the assistant's turn; remove it from the data"
    );

    let bare = Tokenizer::from_gguf(&{
        let mut content = Content::read(&mut File::open(common::smollm2_gguf()).unwrap()).unwrap();
        content.metadata.remove("tokenizer.chat_template");
        content
    })
    .unwrap();
    let err = PromptBuilder::new(&bare, &PromptConfig::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "the model has no chat template: set `prompt.chat_template` in the config"
    );
}

/// A long dialogue from seeded random words.
fn long_dialogue(turns: usize) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let names = ["Anna", "Ben", "Chloe"];
    let words = [
        "meet", "station", "tomorrow", "pizza", "late", "train", "call", "book", "gift", "ok",
        "7pm",
    ];
    (0..turns)
        .map(|t| {
            let line: Vec<&str> = (0..rng.random_range(4..12))
                .map(|_| words[rng.random_range(0..words.len())])
                .collect();
            format!("{}: {}", names[t % 3], line.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn truncate_input_shortens_only_the_dialogue_and_keeps_the_whole_target() {
    let prompts = builder(&PromptConfig::default());
    let r = row(
        &long_dialogue(40),
        "Anna, Ben and Chloe will meet at the station tomorrow at 7 pm.",
    );
    let full = fits(prompts.sample(&r, 4096, Truncation::Drop).unwrap());
    let max = full.len() - 100;
    assert_eq!(
        prompts.sample(&r, max, Truncation::Drop).unwrap(),
        Outcome::Dropped { len: full.len() }
    );

    let Outcome::Truncated {
        sample,
        kept_chars,
        input_chars,
    } = prompts.sample(&r, max, Truncation::TruncateInput).unwrap()
    else {
        panic!("expected truncation");
    };
    assert_eq!(input_chars, r.input.chars().count());
    assert!(
        sample.len() <= max && sample.len() > max - 10,
        "{} vs {max}",
        sample.len()
    );
    assert_eq!(sample.target(), full.target());
    let shortened = row(
        &r.input.chars().take(kept_chars).collect::<String>(),
        &r.target,
    );
    assert_eq!(
        fits(prompts.sample(&shortened, max, Truncation::Drop).unwrap()),
        sample
    );
    // One more character does not fit.
    let longer = row(
        &r.input.chars().take(kept_chars + 1).collect::<String>(),
        &r.target,
    );
    assert!(matches!(
        prompts.sample(&longer, max, Truncation::Drop).unwrap(),
        Outcome::Dropped { .. }
    ));

    // When prompt + target do not fit even with an empty dialogue, the row is dropped.
    let empty_len = fits(
        prompts
            .sample(&row("", &r.target), 4096, Truncation::Drop)
            .unwrap(),
    )
    .len();
    assert_eq!(
        prompts
            .sample(&r, empty_len - 1, Truncation::TruncateInput)
            .unwrap(),
        Outcome::Dropped { len: full.len() }
    );
}

#[test]
fn sample_statistics_count_kept_truncated_and_dropped_rows() {
    let prompts = builder(&PromptConfig::default());
    let target = "Anna and Ben will meet.";
    let rows = vec![
        row("Anna: hi\nBen: hi", target),
        Row {
            location: Location::Line(9),
            ..row(&long_dialogue(60), target)
        },
        row("Anna: see you at 5", target),
    ];
    let short = fits(prompts.sample(&rows[0], 4096, Truncation::Drop).unwrap()).len();
    let third = fits(prompts.sample(&rows[2], 4096, Truncation::Drop).unwrap()).len();
    let max = short.max(third) + 20;

    let (samples, stats) = prompts.samples(&rows, max, Truncation::Drop).unwrap();
    assert_eq!(samples.len(), 2);
    assert_eq!(
        (stats.rows, stats.kept, stats.truncated, stats.dropped),
        (3, 2, 0, 1)
    );
    assert_eq!(stats.dropped_rows, [Location::Line(9)]);
    assert_eq!(stats.longest, short.max(third));
    assert_eq!(stats.mean_len, (short + third) as f64 / 2.0);
    assert_eq!(
        stats.target_tokens,
        samples.iter().map(|s| s.target().len()).sum::<usize>()
    );

    let (samples, stats) = prompts
        .samples(&rows, max, Truncation::TruncateInput)
        .unwrap();
    assert_eq!((samples.len(), stats.truncated, stats.dropped), (3, 1, 0));
    assert!(samples[1].len() <= max);
    assert_eq!(
        stats.to_string(),
        format!(
            "3 rows -> 3 samples (1 with a shortened input, 0 dropped as longer than {max} tokens); longest {} tokens, mean {:.1}, {} target tokens",
            stats.longest, stats.mean_len, stats.target_tokens
        )
    );
}

fn random_sample(rng: &mut ChaCha8Rng, len: usize, prompt_len: usize) -> Sample {
    Sample {
        ids: (0..len).map(|_| rng.random_range(3..49152)).collect(),
        prompt_len,
    }
}

#[test]
fn collate_pads_right_and_shifts_targets() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let samples = [
        random_sample(&mut rng, 9, 4),
        random_sample(&mut rng, 13, 10),
        random_sample(&mut rng, 5, 2),
    ];
    let refs: Vec<&Sample> = samples.iter().collect();
    let batch = collate(&refs, 2);
    assert_eq!((batch.batch, batch.seq), (3, 13));
    assert_eq!(batch.ids.len(), 39);
    assert_eq!(batch.n_targets, (9 - 4) + (13 - 10) + (5 - 2));
    for (b, s) in samples.iter().enumerate() {
        let ids = &batch.ids[b * 13..(b + 1) * 13];
        assert_eq!(ids[..s.len()], s.ids[..]);
        assert!(ids[s.len()..].iter().all(|&id| id == 2));
        for t in 0..13 {
            let expected = if t + 1 >= s.prompt_len && t + 1 < s.len() {
                s.ids[t + 1] as i32
            } else {
                -1
            };
            assert_eq!(
                batch.targets[b * 13 + t],
                expected,
                "sample {b} position {t}"
            );
        }
    }
    assert_eq!(
        collate(&[], 2),
        ferrotune::data::Batch {
            ids: vec![],
            targets: vec![],
            batch: 0,
            seq: 0,
            n_targets: 0
        }
    );
}

#[test]
fn batch_targets_on_real_tokens_are_the_summary_and_end_of_turn() {
    let rows = read(&fixture("rows.jsonl")).unwrap();
    let prompts = builder(&PromptConfig::default());
    let samples: Vec<Sample> = rows
        .iter()
        .map(|r| fits(prompts.sample(r, 512, Truncation::Drop).unwrap()))
        .collect();
    let batch = collate(&samples.iter().collect::<Vec<_>>(), SMOLLM2.pad_id());
    for (b, r) in rows.iter().enumerate() {
        let labels: Vec<u32> = batch.targets[b * batch.seq..(b + 1) * batch.seq]
            .iter()
            .filter(|&&t| t >= 0)
            .map(|&t| t as u32)
            .collect();
        assert_eq!(
            labels,
            SMOLLM2.encode(&format!("{}<|im_end|>", r.target)).unwrap()
        );
        assert_eq!(SMOLLM2.decode(&labels).unwrap(), r.target);
    }
}

#[test]
fn epoch_orders_are_seeded_permutations() {
    let a = epoch_order(50, 42, 0);
    assert_eq!(a, epoch_order(50, 42, 0));
    assert_ne!(a, epoch_order(50, 42, 1));
    assert_ne!(a, epoch_order(50, 7, 0));
    assert_eq!(
        a.iter().copied().collect::<BTreeSet<_>>(),
        (0..50).collect()
    );
}

#[test]
fn each_step_trains_on_the_same_samples_whatever_the_world_size() {
    let order = epoch_order(70, 3, 0);
    let layouts = [
        BatchLayout {
            micro: 2,
            accumulation: 8,
            world: 1,
        },
        BatchLayout {
            micro: 2,
            accumulation: 4,
            world: 2,
        },
        BatchLayout {
            micro: 4,
            accumulation: 1,
            world: 4,
        },
        BatchLayout {
            micro: 1,
            accumulation: 2,
            world: 8,
        },
    ];
    for layout in layouts {
        assert_eq!(layout.global_batch(), 16);
        // 70 = 4 × 16 + 6: the smaller last step is kept.
        assert_eq!(layout.steps_per_epoch(70), 5);
        let mut seen = Vec::new();
        for step in 0..5 {
            let mut step_samples = Vec::new();
            for rank in 0..layout.world {
                let n = layout.micro_batches(&order, step, rank);
                assert!(n <= layout.accumulation);
                for k in 0..layout.accumulation {
                    let micro = layout.micro_batch(&order, step, rank, k);
                    assert_eq!(micro.is_empty(), k >= n);
                    assert!(micro.len() <= layout.micro);
                    step_samples.extend_from_slice(micro);
                }
            }
            assert_eq!(step_samples, layout.step_samples(&order, step));
            assert_eq!(step_samples, order[step * 16..(step * 16 + 16).min(70)]);
            seen.extend(step_samples);
        }
        assert_eq!(seen, order);
    }
    // The last step's 6 samples over 4 ranks: contiguous slices of 1, 2, 1, 2.
    let layout = layouts[2];
    let sizes: Vec<usize> = (0..4)
        .map(|r| layout.rank_samples(&order, 4, r).len())
        .collect();
    assert_eq!(sizes, [1, 2, 1, 2]);
    assert_eq!(layout.rank_samples(&order, 1, 2), &order[16 + 8..16 + 12]);
}

#[test]
fn prepare_reads_splits_and_tokenises_per_config() {
    let yaml = format!(
        "model: {{path: m.gguf}}\n\
         data: {{train: {}, eval: {}, max_train_samples: 4}}\n\
         training: {{max_seq_length: 160}}\n\
         eval: {{num_samples: 2}}\n",
        fixture("rows.jsonl").display(),
        fixture("rows.parquet").display()
    );
    let config = Config::from_yaml(&yaml, Path::new("test.yaml"), &[]).unwrap();
    let prepared = prepare(&config, &SMOLLM2).unwrap();
    let rows = read(&fixture("rows.jsonl")).unwrap();
    // permutation(6, 42, 0) decides which four rows train, in that order.
    let chosen = ferrotune::data::shuffle::permutation(6, 42, 0);
    let prompts = builder(&config.prompt);
    let expected: Vec<Outcome> = chosen[..4]
        .iter()
        .map(|&i| prompts.sample(&rows[i], 160, Truncation::Drop).unwrap())
        .collect();
    let kept: Vec<Sample> = expected
        .into_iter()
        .filter_map(|o| {
            if let Outcome::Fits(s) = o {
                Some(s)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(prepared.train, kept);
    assert_eq!(prepared.stats.rows, 4);
    assert_eq!(prepared.stats.kept + prepared.stats.dropped, 4);
    assert_eq!(
        prepared
            .eval
            .iter()
            .map(|r| r.target.as_str())
            .collect::<Vec<_>>(),
        [rows[0].target.as_str(), rows[1].target.as_str()]
    );

    let tight = Config::from_yaml(
        &yaml,
        Path::new("test.yaml"),
        &["training.max_seq_length=16".into()],
    )
    .unwrap();
    let err = prepare(&tight, &SMOLLM2).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: none of the 4 training rows fits in training.max_seq_length = 16 tokens; raise it or set training.truncation: truncate_input",
            fixture("rows.jsonl").display()
        )
    );
    let missing = Config::from_yaml(
        &yaml,
        Path::new("test.yaml"),
        &["data.train=${FERROTUNE_NO_SUCH_VAR}/x.jsonl".into()],
    )
    .unwrap();
    let err = format!("{:#}", prepare(&missing, &SMOLLM2).unwrap_err());
    assert!(
        err.starts_with("data.train: environment variable `FERROTUNE_NO_SUCH_VAR` is not set"),
        "{err}"
    );
}

#[test]
fn quickstart_dataset_is_well_formed_and_fits_the_quickstart_length() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/quickstart");
    let train = read(&dir.join("train.jsonl")).unwrap();
    let eval = read(&dir.join("eval.jsonl")).unwrap();
    assert_eq!((train.len(), eval.len()), (300, 40));
    let train_texts: BTreeSet<&str> = train
        .iter()
        .flat_map(|r| [r.input.as_str(), r.target.as_str()])
        .collect();
    assert!(eval.iter().all(
        |r| !train_texts.contains(r.input.as_str()) && !train_texts.contains(r.target.as_str())
    ));
    for r in train.iter().chain(&eval) {
        let lines: Vec<&str> = r.input.lines().collect();
        assert!((3..=10).contains(&lines.len()), "{}", r.input);
        let speakers: BTreeSet<&str> = lines
            .iter()
            .map(|l| l.split_once(": ").expect("Name: message").0)
            .collect();
        assert!((2..=4).contains(&speakers.len()), "{}", r.input);
        assert!(
            speakers.iter().all(|s| r.target.contains(s)),
            "{} => {}",
            r.input,
            r.target
        );
        assert!(
            r.target.ends_with('.') && r.target.matches(". ").count() == 0,
            "{}",
            r.target
        );
    }
    let prompts = builder(&PromptConfig::default());
    let (samples, stats) = prompts.samples(&train, 384, Truncation::Drop).unwrap();
    assert_eq!((samples.len(), stats.dropped), (300, 0));
    assert!(stats.longest < 250, "{stats}");
}
