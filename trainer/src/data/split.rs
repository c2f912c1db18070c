//! Choosing the training subset and the evaluation rows.
//!
//! As the reference course does: the training rows are shuffled with `data.shuffle_seed` and the
//! first `data.max_train_samples` are kept. The evaluation rows are the first `eval.num_samples`
//! rows of `data.eval`, in file order; without an eval file, the first
//! ceil(`data.eval_fraction` × rows) of the shuffled training rows are held out instead (and
//! the training subset is taken from the rest).

use anyhow::{Result, bail};
use ferrotune_config::DataConfig;

use super::rows::Row;
use super::shuffle::permutation;

/// The stream of the subset shuffle (epoch orders use streams 1, 2, ...).
pub(crate) const SUBSET_STREAM: u64 = 0;

/// The rows to train on and the rows to evaluate on.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Training rows, in shuffled order.
    pub train: Vec<Row>,
    /// Evaluation rows (empty when there is no eval file and `eval_fraction` is 0).
    pub eval: Vec<Row>,
}

/// Splits `train_rows` (and `eval_rows`, from the eval file when there is one) per `data`,
/// keeping at most `eval_samples` evaluation rows.
pub fn split_rows(
    train_rows: Vec<Row>,
    eval_rows: Option<Vec<Row>>,
    data: &DataConfig,
    eval_samples: usize,
) -> Result<Split> {
    let n = train_rows.len();
    let mut slots: Vec<Option<Row>> = train_rows.into_iter().map(Some).collect();
    let mut shuffled = permutation(n, data.shuffle_seed, SUBSET_STREAM)
        .into_iter()
        .map(|i| slots[i].take().expect("a permutation visits each row once"));

    let mut eval = match eval_rows {
        Some(rows) => rows,
        None if data.eval_fraction > 0.0 => {
            if n < 2 {
                bail!(
                    "data.eval_fraction: cannot hold out evaluation rows from a training file of {n} row"
                );
            }
            let held_out = ((data.eval_fraction * n as f64).ceil() as usize).clamp(1, n - 1);
            shuffled.by_ref().take(held_out).collect()
        }
        None => Vec::new(),
    };
    eval.truncate(eval_samples);
    let train: Vec<Row> = shuffled
        .take(data.max_train_samples.unwrap_or(usize::MAX))
        .collect();
    Ok(Split { train, eval })
}
