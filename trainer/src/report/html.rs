//! The HTML page of a report: one self-contained file (styles inline, charts as SVG data URIs,
//! no scripts), every text from the runs escaped by the template engine.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior};
use plotters::style::RGBColor;
use serde::Serialize;

use super::figures::{Figure, MIB, Missing, ROUGE_NAMES, rouge_values};
use super::plots::{SIZE, color};
use super::run::{Evaluation, Run};
use crate::train::progress::format_duration;

const TEMPLATE: &str = include_str!("report.html");
const NOT_RECORDED: &str = "not recorded";

/// Renders the page for `runs` with `figures` (written as `plots/<name>.svg` beside it) and
/// `samples` predictions per run.
pub fn render(
    runs: &[Run],
    figures: &[Figure],
    missing: &[Missing],
    samples: usize,
) -> anyhow::Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template("report.html", TEMPLATE)?;
    let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
    let page = Page {
        title: format!("ferrotune report: {}", labels.join(" vs ")),
        version: env!("CARGO_PKG_VERSION"),
        generated_at: jiff::Timestamp::now()
            .strftime("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        rouge_names: ROUGE_NAMES,
        runs: runs
            .iter()
            .enumerate()
            .map(|(i, r)| RunView::new(r, i, samples))
            .collect(),
        figures: figures.iter().map(FigureView::new).collect(),
        missing,
    };
    Ok(env.get_template("report.html")?.render(Serde(&page))?)
}

#[derive(Serialize)]
struct Page<'a> {
    title: String,
    version: &'static str,
    generated_at: String,
    rouge_names: [&'static str; 4],
    runs: Vec<RunView>,
    figures: Vec<FigureView>,
    missing: &'a [Missing],
}

#[derive(Serialize)]
struct FigureView {
    name: &'static str,
    title: String,
    file: String,
    /// Written unescaped: a fixed prefix and base64 text.
    data_uri: String,
    width: u32,
    height: u32,
}

impl FigureView {
    fn new(figure: &Figure) -> Self {
        Self {
            name: figure.name,
            title: figure.title.clone(),
            file: format!("{}/{}.svg", super::PLOTS_DIR, figure.name),
            data_uri: format!("data:image/svg+xml;base64,{}", STANDARD.encode(&figure.svg)),
            width: SIZE.0,
            height: SIZE.1,
        }
    }
}

#[derive(Serialize)]
struct Fact {
    name: &'static str,
    value: String,
}

#[derive(Serialize)]
struct RougeRow {
    name: &'static str,
    untuned: String,
    tuned: String,
    change: String,
    untuned_stemmed: String,
    tuned_stemmed: String,
}

#[derive(Serialize)]
struct Sample {
    index: usize,
    dialogue: String,
    reference: String,
    tuned: String,
    untuned: String,
}

#[derive(Serialize)]
struct RunView {
    label: String,
    color: String,
    mode: String,
    model: String,
    steps: String,
    training_time: String,
    tokens_per_second: String,
    final_loss: String,
    peak_memory: String,
    rouge_summary: Vec<String>,
    facts: Vec<Fact>,
    rouge: Vec<RougeRow>,
    samples: Vec<Sample>,
    sample_total: usize,
    has_tuned_samples: bool,
    has_untuned_samples: bool,
    config: Option<String>,
}

impl RunView {
    fn new(run: &Run, index: usize, samples: usize) -> Self {
        let config = run.config.as_ref();
        let mode = config.map_or_else(
            || NOT_RECORDED.to_owned(),
            |c| format!("{:?}", c.training.mode).to_lowercase(),
        );
        let model = config
            .and_then(|c| {
                c.model
                    .name
                    .clone()
                    .or_else(|| c.model.hub.clone())
                    .or_else(|| c.model.path.clone())
            })
            .or_else(|| {
                run.tuned
                    .as_ref()
                    .or(run.untuned.as_ref())
                    .map(|e| e.results.model_name.clone())
            })
            .unwrap_or_else(|| NOT_RECORDED.into());
        let last = run.steps.last();
        let steps = last.map_or_else(|| "0".into(), |s| s.step.to_string());
        let training_seconds = run
            .training_seconds
            .or_else(|| last.map(|s| s.elapsed_seconds));
        let training_time = training_seconds.map_or_else(|| NOT_RECORDED.into(), seconds);
        let tokens_per_second = run
            .mean_tokens_per_second()
            .map_or_else(|| NOT_RECORDED.into(), |t| format!("{t:.0}"));
        let final_loss = last.map_or_else(|| NOT_RECORDED.into(), |s| format!("{:.4}", s.loss));
        let peak_memory = run
            .peak_memory_bytes()
            .map_or_else(|| NOT_RECORDED.into(), bytes);
        let tuned = run.tuned.as_ref().map(|e| rouge_values(&e.results.plain));
        let untuned = run.untuned.as_ref().map(|e| rouge_values(&e.results.plain));
        let rouge_summary = (0..ROUGE_NAMES.len())
            .map(|k| match (tuned, untuned) {
                (Some(t), Some(u)) => format!("{:.4} ({:+.4})", t[k], t[k] - u[k]),
                (Some(t), None) => format!("{:.4}", t[k]),
                (None, Some(u)) => format!("untuned {:.4}", u[k]),
                (None, None) => "-".into(),
            })
            .collect();
        let mut facts = vec![
            Fact {
                name: "Directory",
                value: run.dir.display().to_string(),
            },
            Fact {
                name: "Model",
                value: model.clone(),
            },
            Fact {
                name: "Mode",
                value: mode.clone(),
            },
            Fact {
                name: "Training time",
                value: training_time.clone(),
            },
            Fact {
                name: "Optimizer steps",
                value: match last {
                    Some(s) => format!("{} ({:.2} epochs)", s.step, s.epoch),
                    None => "0".into(),
                },
            },
            Fact {
                name: "Tokens trained on",
                value: run.steps.iter().map(|s| s.tokens).sum::<u64>().to_string(),
            },
            Fact {
                name: "Throughput",
                value: format!("{tokens_per_second} tokens/s"),
            },
            Fact {
                name: "Peak memory (process RSS)",
                value: peak_memory.clone(),
            },
        ];
        let skipped = run.steps.iter().filter(|s| s.skipped).count();
        if skipped > 0 {
            facts.push(Fact {
                name: "Skipped updates (non-finite)",
                value: skipped.to_string(),
            });
        }
        facts.extend(hardware_facts(run));
        Self {
            label: run.label.clone(),
            color: css(color(index)),
            mode,
            model,
            steps,
            training_time,
            tokens_per_second,
            final_loss,
            peak_memory,
            rouge_summary,
            facts,
            rouge: rouge_rows(run),
            sample_total: run
                .tuned
                .as_ref()
                .or(run.untuned.as_ref())
                .map_or(0, |e| e.predictions.len()),
            samples: sample_rows(run, samples),
            has_tuned_samples: run
                .tuned
                .as_ref()
                .is_some_and(|e| !e.predictions.is_empty()),
            has_untuned_samples: run
                .untuned
                .as_ref()
                .is_some_and(|e| !e.predictions.is_empty()),
            config: run.config_text.clone(),
        }
    }
}

/// Where the run ran, from `run_info.json`.
fn hardware_facts(run: &Run) -> Vec<Fact> {
    let Some(info) = &run.info else {
        return vec![Fact {
            name: "Hardware",
            value: format!("{NOT_RECORDED} (no run_info.json)"),
        }];
    };
    let host = &info.host;
    vec![
        Fact {
            name: "Started",
            value: info.started_at.clone(),
        },
        Fact {
            name: "Device",
            value: info.device.clone(),
        },
        Fact {
            name: "Host",
            value: host.hostname.clone(),
        },
        Fact {
            name: "CPU",
            value: format!(
                "{} ({} logical cores)",
                host.cpu_model.as_deref().unwrap_or("unknown model"),
                host.cpu_cores
            ),
        },
        Fact {
            name: "Memory",
            value: host.memory_bytes.map_or_else(|| NOT_RECORDED.into(), bytes),
        },
        Fact {
            name: "ferrotune version",
            value: info.ferrotune_version.clone(),
        },
    ]
}

/// ROUGE untuned / tuned / change, plain and stemmed; empty without evaluations.
fn rouge_rows(run: &Run) -> Vec<RougeRow> {
    if run.tuned.is_none() && run.untuned.is_none() {
        return Vec::new();
    }
    let values = |e: &Option<Evaluation>, stemmed: bool| {
        e.as_ref().map(|e| {
            rouge_values(if stemmed {
                &e.results.stemmed
            } else {
                &e.results.plain
            })
        })
    };
    let (u, t) = (values(&run.untuned, false), values(&run.tuned, false));
    let (us, ts) = (values(&run.untuned, true), values(&run.tuned, true));
    let cell =
        |v: Option<[f64; 4]>, k: usize| v.map_or_else(|| "-".into(), |v| format!("{:.4}", v[k]));
    ROUGE_NAMES
        .iter()
        .enumerate()
        .map(|(k, name)| RougeRow {
            name,
            untuned: cell(u, k),
            tuned: cell(t, k),
            change: match (u, t) {
                (Some(u), Some(t)) => format!("{:+.4}", t[k] - u[k]),
                _ => "-".into(),
            },
            untuned_stemmed: cell(us, k),
            tuned_stemmed: cell(ts, k),
        })
        .collect()
}

/// The first `limit` evaluation rows with the tuned and (matched by dialogue) untuned
/// predictions.
fn sample_rows(run: &Run, limit: usize) -> Vec<Sample> {
    let tuned = run.tuned.as_ref().map_or(&[][..], |e| &e.predictions[..]);
    let untuned = run.untuned.as_ref().map_or(&[][..], |e| &e.predictions[..]);
    let untuned_by_dialogue: HashMap<&str, &str> = untuned
        .iter()
        .map(|p| (p.dialogue.as_str(), p.prediction.as_str()))
        .collect();
    let rows = if tuned.is_empty() { untuned } else { tuned };
    rows.iter()
        .take(limit)
        .enumerate()
        .map(|(i, p)| Sample {
            index: i + 1,
            dialogue: p.dialogue.clone(),
            reference: p.reference.clone(),
            tuned: if tuned.is_empty() {
                String::new()
            } else {
                p.prediction.clone()
            },
            untuned: untuned_by_dialogue
                .get(p.dialogue.as_str())
                .map_or_else(String::new, |s| (*s).to_owned()),
        })
        .collect()
}

/// Seconds as `12.3 s` under a minute, else `4m05s` / `1h02m03s`.
fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format_duration(Duration::from_secs_f64(s))
    }
}

/// Bytes as MiB or GiB.
fn bytes(b: u64) -> String {
    let mib = b as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// A colour as CSS `#rrggbb`.
fn css(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}
