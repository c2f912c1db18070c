//! Reports a person looks at: while training, TensorBoard scalars and `run_info.json` in the
//! output directory ([`RunRecorder`]); afterwards, `ferrotune report`'s self-contained
//! `report.html` with SVG charts, ROUGE before vs after, sample predictions, the config and the
//! hardware, for one run or several overlaid ([`write`]).

pub mod event;
pub mod figures;
pub mod host;
pub mod html;
pub mod plots;
pub mod recorder;
pub mod run;
pub mod run_info;
pub mod tensorboard;
pub mod tfrecord;

use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};

pub use recorder::RunRecorder;
use run::{Run, labels};

/// The directory beside the page that holds the charts as SVG files.
pub const PLOTS_DIR: &str = "plots";

/// Predictions shown per run unless asked otherwise.
pub const DEFAULT_SAMPLES: usize = 10;

/// What [`write`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The HTML page.
    pub html: PathBuf,
    /// The charts as SVG files, in `plots/` beside the page.
    pub plots: Vec<PathBuf>,
    /// The charts not drawn, with why.
    pub missing: Vec<figures::Missing>,
}

/// Reads the run directories `dirs` and writes `out` (an HTML page) with the charts in
/// `plots/` beside it, showing up to `samples` predictions per run.
pub fn write(dirs: &[PathBuf], out: &Path, samples: usize) -> anyhow::Result<Written> {
    ensure!(!dirs.is_empty(), "name at least one run directory");
    let runs = dirs
        .iter()
        .zip(labels(dirs))
        .map(|(dir, label)| Run::load(dir, label))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (figures, missing) = figures::figures(&runs)?;
    let page = html::render(&runs, &figures, &missing, samples)?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let plot_dir = parent.join(PLOTS_DIR);
    std::fs::create_dir_all(&plot_dir)
        .with_context(|| format!("creating {}", plot_dir.display()))?;
    let mut plots = Vec::new();
    for figure in &figures {
        let path = plot_dir.join(format!("{}.svg", figure.name));
        std::fs::write(&path, &figure.svg)
            .with_context(|| format!("writing {}", path.display()))?;
        plots.push(path);
    }
    std::fs::write(out, page).with_context(|| format!("writing {}", out.display()))?;
    Ok(Written {
        html: out.to_path_buf(),
        plots,
        missing,
    })
}
