//! ROUGE, the Porter stemmer and the evaluation files against Python's `rouge_score` and NLTK.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use ferrotune::eval::porter;
use ferrotune::eval::results::{self, EvalResults, Prediction, ResultsError};
use ferrotune::eval::rouge::{self, PairScores, RougeMeans, Score};
use serde::Deserialize;

fn course_dir() -> PathBuf {
    common::shared().join("fixtures/rouge-course")
}

/// `exact_means.json`: per run, the plain and stemmed means of rouge_score's F-measures.
#[derive(Deserialize)]
struct ExactMeans {
    plain: RougeMeans,
    stemmed: RougeMeans,
}

fn assert_means_close(actual: &RougeMeans, expected: &RougeMeans, what: &str) {
    for (name, a, e) in [
        ("rouge1", actual.rouge1, expected.rouge1),
        ("rouge2", actual.rouge2, expected.rouge2),
        ("rougeL", actual.rouge_l, expected.rouge_l),
        ("rougeLsum", actual.rouge_lsum, expected.rouge_lsum),
    ] {
        assert!(
            (a - e).abs() <= 1e-9,
            "{what} {name}: got {a}, rouge_score gives {e}"
        );
    }
}

#[test]
fn course_predictions_reproduce_the_exact_means() {
    let text = std::fs::read_to_string(course_dir().join("exact_means.json")).unwrap();
    let exact: HashMap<String, ExactMeans> = serde_json::from_str(&text).unwrap();
    assert_eq!(exact.len(), 2);
    for (run, expected) in &exact {
        let file = course_dir().join(format!("{run}.predictions.jsonl"));
        let results = results::evaluate_file(&file).unwrap();
        println!("{run}: plain {:?}", results.plain);
        println!("{run}: stemmed {:?}", results.stemmed);
        assert_eq!(results.num_samples, 200);
        assert_eq!(&results.model_name, run);
        assert_eq!(PathBuf::from(&results.model_path), course_dir());
        assert_means_close(&results.plain, &expected.plain, &format!("{run} plain"));
        assert_means_close(
            &results.stemmed,
            &expected.stemmed,
            &format!("{run} stemmed"),
        );
    }
}

/// One line of `fixtures/rouge/pairs.jsonl`: [precision, recall, fmeasure] per ROUGE type.
#[derive(Deserialize)]
struct Case {
    prediction: String,
    reference: String,
    plain: Expected,
    stemmed: Expected,
}

#[derive(Deserialize)]
struct Expected {
    rouge1: [f64; 3],
    rouge2: [f64; 3],
    #[serde(rename = "rougeL")]
    rouge_l: [f64; 3],
    #[serde(rename = "rougeLsum")]
    rouge_lsum: [f64; 3],
}

fn assert_pair_close(actual: &PairScores, expected: &Expected, what: &str) {
    let score = |s: &Score| [s.precision, s.recall, s.fmeasure];
    for (name, a, e) in [
        ("rouge1", score(&actual.rouge1), expected.rouge1),
        ("rouge2", score(&actual.rouge2), expected.rouge2),
        ("rougeL", score(&actual.rouge_l), expected.rouge_l),
        ("rougeLsum", score(&actual.rouge_lsum), expected.rouge_lsum),
    ] {
        for (a, e) in a.iter().zip(e) {
            assert!(
                (a - e).abs() <= 1e-12,
                "{what} {name}: got {a:?}, rouge_score gives {e:?}"
            );
        }
    }
}

#[test]
fn pair_scores_equal_rouge_score() {
    let text = std::fs::read_to_string(common::fixtures().join("rouge/pairs.jsonl")).unwrap();
    let cases: Vec<Case> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(cases.len() > 200);
    for (i, case) in cases.iter().enumerate() {
        let what = format!(
            "pair {} ({:?} vs {:?})",
            i + 1,
            case.prediction,
            case.reference
        );
        let plain = rouge::score(&case.prediction, &case.reference, false);
        assert_pair_close(&plain, &case.plain, &format!("{what}, plain"));
        let stemmed = rouge::score(&case.prediction, &case.reference, true);
        assert_pair_close(&stemmed, &case.stemmed, &format!("{what}, stemmed"));
    }
    // The fixture exercises what matters: summary-level LCS and the stemmer change scores.
    let lsum_differs = cases
        .iter()
        .filter(|c| c.plain.rouge_l != c.plain.rouge_lsum)
        .count();
    let stem_differs = cases
        .iter()
        .filter(|c| c.plain.rouge1 != c.stemmed.rouge1)
        .count();
    assert!(
        lsum_differs >= 50 && stem_differs >= 50,
        "{lsum_differs} {stem_differs}"
    );
}

#[test]
fn porter_stems_match_nltk() {
    let text = std::fs::read_to_string(common::fixtures().join("porter/words.tsv")).unwrap();
    let pairs: Vec<(&str, &str)> = text
        .lines()
        .map(|line| line.split_once('\t').expect("word<TAB>stem"))
        .collect();
    let distinct: BTreeSet<&str> = pairs.iter().map(|&(word, _)| word).collect();
    assert!(distinct.len() >= 5000, "only {} words", distinct.len());
    let wrong: Vec<String> = pairs
        .iter()
        .filter_map(|&(word, expected)| {
            let got = porter::stem(word);
            (got != expected).then(|| format!("{word}: got {got}, NLTK gives {expected}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} stems differ:\n{}",
        wrong.len(),
        pairs.len(),
        wrong.join("\n")
    );
}

fn course_pairs() -> Vec<Prediction> {
    results::read_predictions(&course_dir().join("baseline_qlora.predictions.jsonl")).unwrap()
}

#[test]
fn two_hundred_pairs_score_well_under_a_second() {
    let predictions = course_pairs();
    assert_eq!(predictions.len(), 200);
    let start = Instant::now();
    let results = EvalResults::score(&predictions, "m", "p").unwrap();
    let elapsed = start.elapsed();
    println!("200 pairs, plain and stemmed: {elapsed:?}");
    assert_eq!(results.num_samples, 200);
    assert!(elapsed.as_secs_f64() < 0.5, "{elapsed:?}");
}

#[test]
fn means_do_not_depend_on_the_thread_count() {
    let predictions = course_pairs();
    let pairs: Vec<(&str, &str)> = predictions
        .iter()
        .map(|p| (p.prediction.as_str(), p.reference.as_str()))
        .collect();
    let on_threads = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| rouge::mean_fmeasures(&pairs, true).unwrap())
    };
    let one = on_threads(1);
    for threads in [2, 3, 7] {
        let many = on_threads(threads);
        // Bit for bit, not just close.
        assert_eq!(format!("{one:?}"), format!("{many:?}"), "{threads} threads");
    }
    assert_eq!(rouge::mean_fmeasures(&[], false), None);
}

#[test]
fn predictions_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("predictions.jsonl");
    let mut predictions = course_pairs();
    predictions.truncate(5);
    predictions[0].prediction = "Line one.\nLine \"two\" \u{1F602}\t\\".into();
    results::write_predictions(&path, &predictions).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 5);
    assert!(text.starts_with(r#"{"dialogue":"#), "{text}");
    assert_eq!(results::read_predictions(&path).unwrap(), predictions);
}

/// Writes `lines` as a predictions file and returns the error reading it gives.
fn read_error(lines: &[&str]) -> (ResultsError, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    (results::read_predictions(&path).unwrap_err(), path)
}

#[test]
fn predictions_read_errors_name_the_file_and_line() {
    let good = r#"{"dialogue": "A: hi", "reference": "A greets.", "prediction": "A says hi."}"#;
    let cases = [
        (
            vec![
                good,
                "",
                r#"{"dialogue": "A: hi", "reference": "A greets."}"#,
            ],
            3,
            "missing field `prediction`",
        ),
        (
            vec![good, r#"{"dialogue": "A: hi", "reference": "#],
            2,
            "EOF while parsing",
        ),
        (
            vec![r#"{"dialogue": 1, "reference": "x", "prediction": "y"}"#],
            1,
            "invalid type: integer `1`",
        ),
        (vec![good, good, "not json"], 3, "expected ident"),
        (
            vec![good, "42"],
            2,
            "invalid type: integer `42`, expected struct Prediction",
        ),
    ];
    for (lines, line, reason) in cases {
        let (error, path) = read_error(&lines);
        let message = error.to_string();
        assert!(
            matches!(&error, ResultsError::Line { line: l, .. } if *l == line),
            "{lines:?}: {message}"
        );
        assert!(
            message.starts_with(&format!("{}, line {line}, column ", path.display())),
            "{message}"
        );
        assert!(message.contains(reason), "{message}");
        assert!(
            message.contains("\"dialogue\", \"reference\" and \"prediction\""),
            "{message}"
        );
    }
}

#[test]
fn missing_and_empty_prediction_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let error = results::read_predictions(&missing).unwrap_err();
    assert!(matches!(error, ResultsError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}: cannot read", missing.display()))
    );

    let empty = dir.path().join("predictions.jsonl");
    std::fs::write(&empty, "\n  \n").unwrap();
    assert_eq!(results::read_predictions(&empty).unwrap(), []);
    let error = results::evaluate_file(&empty).unwrap_err();
    assert!(matches!(error, ResultsError::Empty { .. }), "{error}");
    assert!(error.to_string().contains(&empty.display().to_string()));
}

#[test]
fn eval_results_file_has_the_course_keys_and_stemmed_means() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("qlora-run");
    std::fs::create_dir(&run_dir).unwrap();
    let predictions_path = run_dir.join("predictions.jsonl");
    let mut predictions = course_pairs();
    predictions.truncate(20);
    results::write_predictions(&predictions_path, &predictions).unwrap();

    let evaluated = results::evaluate_file(&predictions_path).unwrap();
    assert_eq!(evaluated.model_name, "qlora-run");
    assert_eq!(PathBuf::from(&evaluated.model_path), run_dir);
    assert_eq!(evaluated.num_samples, 20);
    let pairs: Vec<(&str, &str)> = predictions
        .iter()
        .map(|p| (p.prediction.as_str(), p.reference.as_str()))
        .collect();
    assert_eq!(Some(evaluated.plain), rouge::mean_fmeasures(&pairs, false));
    assert_eq!(Some(evaluated.stemmed), rouge::mean_fmeasures(&pairs, true));
    assert!(evaluated.stemmed.rouge1 > evaluated.plain.rouge1);

    let results_path = run_dir.join("eval_results.json");
    evaluated.write(&results_path).unwrap();
    let text = std::fs::read_to_string(&results_path).unwrap();
    assert!(text.starts_with("{\n  \"rouge1\": "), "{text}");
    // Keys in order, read from the pretty-printed text (two spaces: top level, four: `stemmed`).
    let keys_at = |indent: &str| -> Vec<String> {
        text.lines()
            .filter_map(|line| {
                line.strip_prefix(indent)?
                    .strip_prefix('"')?
                    .split_once('"')
            })
            .map(|(key, _)| key.to_owned())
            .collect()
    };
    assert_eq!(
        keys_at("  "),
        [
            "rouge1",
            "rouge2",
            "rougeL",
            "rougeLsum",
            "num_samples",
            "model_name",
            "model_path",
            "stemmed"
        ]
    );
    assert_eq!(keys_at("    "), ["rouge1", "rouge2", "rougeL", "rougeLsum"]);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["rougeL"].as_f64(), Some(evaluated.plain.rouge_l));
    assert_eq!(json["num_samples"], 20);
    let back: EvalResults = serde_json::from_value(json).unwrap();
    assert_eq!(back, evaluated);
}
