//! Evaluation as the course does it: greedy summaries of the evaluation dialogues with a KV cache,
//! scored with ROUGE (Python `rouge_score`'s numbers, plain and Porter-stemmed), written as
//! `predictions.jsonl` and `eval_results.json` beside the model.

pub mod generate;
pub mod porter;
pub mod results;
pub mod rouge;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, ensure};
use ferrotune_config::{Config, Mode};

use crate::data::{self, PromptBuilder, Row};
use crate::model::adapter::{is_adapter_dir, read_peft_adapter};
use crate::model::llama::{Adaptation, Llama, LoraSpec};
use crate::model::load::{ModelSource, load};
use crate::setup::load_base;
use crate::tokenizer::Tokenizer;
use generate::{Decoding, generate};
use results::{EvalResults, Prediction, write_predictions};

/// Generates summaries for the first `eval.num_samples` of `rows`, scores them, and writes
/// `predictions.jsonl` and `eval_results.json` into `dir`.
pub fn evaluate(
    model: &Llama,
    tokenizer: &Tokenizer,
    rows: &[Row],
    config: &Config,
    model_name: &str,
    dir: &Path,
) -> anyhow::Result<EvalResults> {
    let rows = &rows[..rows.len().min(config.eval.num_samples)];
    ensure!(
        !rows.is_empty(),
        "there are no evaluation rows (set data.eval, or data.eval_fraction > 0)"
    );
    let builder = PromptBuilder::new(tokenizer, &config.prompt)?;
    let prompts = rows
        .iter()
        .map(|r| builder.eval_prompt(r))
        .collect::<Result<Vec<_>, _>>()?;
    let decoding = Decoding {
        max_new_tokens: config.eval.max_new_tokens,
        batch_size: config.eval.batch_size,
    };
    tracing::info!(
        "generating summaries for {} evaluation rows (batches of {}, at most {} new tokens)",
        rows.len(),
        decoding.batch_size,
        decoding.max_new_tokens
    );
    let started = Instant::now();
    let outputs = generate(model, tokenizer, &prompts, decoding, |done| {
        tracing::info!(
            "generated {done}/{} ({:.0} s)",
            rows.len(),
            started.elapsed().as_secs_f64()
        );
    })?;
    let predictions: Vec<Prediction> = rows
        .iter()
        .zip(outputs)
        .map(|(r, prediction)| Prediction {
            dialogue: r.input.clone(),
            reference: r.target.clone(),
            prediction,
        })
        .collect();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_predictions(&dir.join("predictions.jsonl"), &predictions)?;
    let results = EvalResults::score(&predictions, model_name, dir.display().to_string())
        .context("nothing to score")?;
    results.write(&dir.join("eval_results.json"))?;
    tracing::info!(
        "ROUGE-1 {:.4}  ROUGE-2 {:.4}  ROUGE-L {:.4}  ROUGE-Lsum {:.4} ({} samples) -> {}",
        results.plain.rouge1,
        results.plain.rouge2,
        results.plain.rouge_l,
        results.plain.rouge_lsum,
        results.num_samples,
        dir.join("eval_results.json").display()
    );
    Ok(results)
}

/// `ferrotune eval --config FILE --model-path DIR`: loads a trained adapter (onto the config's
/// base model) or a full model directory, then evaluates it into `model_path`.
pub fn run(config: &Config, model_path: &Path) -> anyhow::Result<EvalResults> {
    let rows = data::split(config)?.eval;
    if is_adapter_dir(model_path) {
        let base = load_base(config, 0)?;
        let (spec, tensors) = read_peft_adapter(model_path, &base.device)?;
        let mode = if config.training.mode == Mode::Qlora {
            Mode::Qlora
        } else {
            Mode::Lora
        };
        let lora = LoraSpec {
            r: spec.r,
            alpha: spec.alpha,
            dropout: 0.0,
            targets: spec.target_modules,
        };
        let mut model = Llama::new(
            base.model.config,
            base.model.tensors,
            &Adaptation {
                mode,
                lora: Some(lora),
            },
            0,
        )?;
        model.cast(crate::device::dtype(config.training.dtype, &base.device)?)?;
        let expected = model.trainable().len();
        ensure!(
            tensors.len() == expected,
            "{}: has {} LoRA tensors, its adapter_config.json implies {expected}",
            model_path.display(),
            tensors.len()
        );
        for (id, t) in tensors {
            model
                .set_param(id, t)
                .with_context(|| format!("applying {}", model_path.display()))?;
        }
        evaluate(
            &model,
            &base.tokenizer,
            &rows,
            config,
            &base.name,
            model_path,
        )
    } else {
        let device = crate::device::resolve(config.training.device, 0)?;
        let loaded = load(&ModelSource::from_path(model_path)?, &device)?;
        let tokenizer = Tokenizer::from_hf_dir(model_path).with_context(|| {
            format!(
                "{}: a model directory needs its tokenizer files",
                model_path.display()
            )
        })?;
        let frozen = Adaptation {
            mode: Mode::Lora,
            lora: None,
        };
        let mut model = Llama::new(loaded.config, loaded.tensors, &frozen, 0)?;
        model.cast(crate::device::dtype(config.training.dtype, &device)?)?;
        evaluate(&model, &tokenizer, &rows, config, &loaded.name, model_path)
    }
}

/// Prints ROUGE before and after training side by side (or after only).
pub fn print_comparison(before: Option<&EvalResults>, after: &EvalResults) {
    let rows = |r: &EvalResults| {
        [
            ("ROUGE-1", r.plain.rouge1),
            ("ROUGE-2", r.plain.rouge2),
            ("ROUGE-L", r.plain.rouge_l),
            ("ROUGE-Lsum", r.plain.rouge_lsum),
        ]
    };
    println!(
        "\nROUGE F-measure, mean over {} evaluation samples",
        after.num_samples
    );
    match before {
        Some(b) => {
            println!("{:<12}{:>10}{:>10}{:>10}", "", "untuned", "tuned", "change");
            for ((name, b), (_, a)) in rows(b).into_iter().zip(rows(after)) {
                println!("{name:<12}{b:>10.4}{a:>10.4}{:>+10.4}", a - b);
            }
        }
        None => {
            for (name, a) in rows(after) {
                println!("{name:<12}{a:>10.4}");
            }
        }
    }
}
