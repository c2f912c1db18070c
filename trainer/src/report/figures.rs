//! The report's charts, made from one or more runs: training curves overlaid run by run, and
//! ROUGE before and after training side by side.

use super::plots::{BarChart, Bars, LineChart, SHARED, Series, color};
use super::run::Run;
use crate::eval::rouge::RougeMeans;
use crate::train::metrics::StepRecord;

/// One chart of the report.
#[derive(Debug, Clone)]
pub struct Figure {
    /// File stem of its SVG file (`loss` → `loss.svg`).
    pub name: &'static str,
    /// Its caption.
    pub title: String,
    /// The SVG document.
    pub svg: String,
}

/// A chart that could not be drawn, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    /// The chart's caption.
    pub title: String,
    /// Why it is absent.
    pub reason: String,
}

/// The charts for `runs` (run `i` drawn in colour `i`), and the ones without data.
pub fn figures(runs: &[Run]) -> anyhow::Result<(Vec<Figure>, Vec<Missing>)> {
    let mut figures = Vec::new();
    let mut missing = Vec::new();
    let mut add = |name: &'static str, title: &str, svg: Option<String>, reason: &str| match svg {
        Some(svg) => figures.push(Figure {
            name,
            title: title.into(),
            svg,
        }),
        None => missing.push(Missing {
            title: title.into(),
            reason: reason.into(),
        }),
    };
    let no_steps = "no run has metrics.jsonl records";
    let curves: [(&'static str, &str, &str, &str, StepValue); 4] = [
        ("loss", "Training loss", "step", "loss", |s| Some(s.loss)),
        (
            "learning_rate",
            "Learning rate",
            "step",
            "learning rate",
            |s| Some(s.learning_rate),
        ),
        (
            "grad_norm",
            "Gradient norm (before clipping)",
            "step",
            "global L2 norm",
            |s| Some(s.grad_norm),
        ),
        ("memory", "Peak memory", "step", "MiB", |s| {
            s.peak_memory_bytes.map(|b| b as f64 / MIB)
        }),
    ];
    for (name, title, x, y, value) in curves {
        let chart = step_chart(runs, title, x, y, |s| Some(s.step as f64), value);
        let reason = if name == "memory" {
            "no run recorded peak_memory_bytes in metrics.jsonl"
        } else {
            no_steps
        };
        add(name, title, chart.svg()?, reason);
    }
    let throughput = step_chart(
        runs,
        "Throughput",
        "training time (s)",
        "tokens / s",
        |s| Some(s.elapsed_seconds),
        |s| Some(s.tokens_per_second),
    );
    add("throughput", "Throughput", throughput.svg()?, no_steps);
    add(
        "rouge",
        "ROUGE before vs after training",
        rouge_chart(runs).svg()?,
        "no run has eval_results.json",
    );
    Ok((figures, missing))
}

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

type StepValue = fn(&StepRecord) -> Option<f64>;

/// One curve per run of `y` against `x` over its steps.
fn step_chart(
    runs: &[Run],
    title: &str,
    x_label: &str,
    y_label: &str,
    x: StepValue,
    y: StepValue,
) -> LineChart {
    LineChart {
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        series: runs
            .iter()
            .enumerate()
            .filter(|(_, run)| !run.steps.is_empty())
            .map(|(i, run)| Series {
                label: run.label.clone(),
                color: color(i),
                points: run
                    .steps
                    .iter()
                    .filter_map(|s| Some((x(s)?, y(s)?)))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect(),
    }
}

/// The names of the ROUGE variants, in the order charts and tables show them.
pub const ROUGE_NAMES: [&str; 4] = ["ROUGE-1", "ROUGE-2", "ROUGE-L", "ROUGE-Lsum"];

/// The four ROUGE F-measures in the order of [`ROUGE_NAMES`].
pub fn rouge_values(means: &RougeMeans) -> [f64; 4] {
    [means.rouge1, means.rouge2, means.rouge_l, means.rouge_lsum]
}

/// Bars of each run's untuned and tuned ROUGE; one grey untuned bar when every run evaluated
/// the same untuned model with the same result.
fn rouge_chart(runs: &[Run]) -> BarChart {
    let values = |m: &RougeMeans| rouge_values(m).to_vec();
    let untuned: Vec<_> = runs
        .iter()
        .map(|r| r.untuned.as_ref().map(|e| &e.results))
        .collect();
    let shared_untuned = runs.len() > 1
        && untuned.iter().all(|u| {
            u.zip(untuned[0])
                .is_some_and(|(a, b)| a.plain == b.plain && a.model_name == b.model_name)
        });
    let single = runs.len() == 1;
    let name = |run: &Run, stage: &str| {
        if single {
            stage.to_owned()
        } else {
            format!("{} {stage}", run.label)
        }
    };
    let mut bars = Vec::new();
    if shared_untuned && let Some(first) = untuned[0] {
        bars.push(Bars {
            label: "untuned (all runs)".into(),
            color: SHARED,
            faded: false,
            values: values(&first.plain),
        });
    }
    for (i, run) in runs.iter().enumerate() {
        if !shared_untuned && let Some(u) = &run.untuned {
            bars.push(Bars {
                label: name(run, "untuned"),
                color: color(i),
                faded: true,
                values: values(&u.results.plain),
            });
        }
        if let Some(t) = &run.tuned {
            bars.push(Bars {
                label: name(run, "tuned"),
                color: color(i),
                faded: false,
                values: values(&t.results.plain),
            });
        }
    }
    BarChart {
        title: "ROUGE before vs after training".into(),
        y_label: "F-measure".into(),
        categories: ROUGE_NAMES.map(str::to_owned).to_vec(),
        bars,
    }
}
