//! ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum, computed exactly as Google's `rouge_score` package
//! computes them with its default tokenizer (optionally with NLTK's Porter stemmer).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::porter;

/// Precision, recall and F-measure of one ROUGE variant for one pair.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Score {
    /// Matches / units in the prediction.
    pub precision: f64,
    /// Matches / units in the reference.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub fmeasure: f64,
}

impl Score {
    /// `hits` matched units out of `predicted` prediction units and `referenced` reference units
    /// (an empty side divides by one, so it scores 0).
    fn from_counts(hits: usize, predicted: usize, referenced: usize) -> Self {
        let precision = hits as f64 / predicted.max(1) as f64;
        let recall = hits as f64 / referenced.max(1) as f64;
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// The four ROUGE scores of one (prediction, reference) pair.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PairScores {
    /// Unigram overlap.
    pub rouge1: Score,
    /// Bigram overlap.
    pub rouge2: Score,
    /// Longest common subsequence of the whole texts.
    pub rouge_l: Score,
    /// Summary-level LCS over the texts' lines (equals ROUGE-L for single-line texts).
    pub rouge_lsum: Score,
}

/// Mean F-measures over many pairs, keyed as `rouge_score` and `eval_results.json` name them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RougeMeans {
    /// Mean ROUGE-1 F-measure.
    pub rouge1: f64,
    /// Mean ROUGE-2 F-measure.
    pub rouge2: f64,
    /// Mean ROUGE-L F-measure.
    #[serde(rename = "rougeL")]
    pub rouge_l: f64,
    /// Mean ROUGE-Lsum F-measure.
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: f64,
}

/// The tokens of `rouge_score`'s default tokenizer: the text is lowercased, every character
/// other than `a-z` and `0-9` separates tokens, and with `stem` the tokens longer than three
/// characters are Porter-stemmed.
pub fn tokenize(text: &str, stem: bool) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut finish = |current: &mut String| {
        if !current.is_empty() {
            let token = std::mem::take(current);
            let token = if stem && token.len() > 3 {
                porter::stem(&token)
            } else {
                token
            };
            if !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                tokens.push(token);
            }
        }
    };
    // Lowercasing char by char gives the same ASCII letters as lowercasing the whole text: the
    // only context-dependent mapping (final sigma) never yields one.
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            current.push(c);
        } else {
            finish(&mut current);
        }
    }
    finish(&mut current);
    tokens
}

/// ROUGE-1, -2, -L and -Lsum of `prediction` against `reference`, as
/// `rouge_scorer.RougeScorer([...], use_stemmer=stem).score(reference, prediction)` gives them.
pub fn score(prediction: &str, reference: &str, stem: bool) -> PairScores {
    let prediction_lines = tokenize_lines(prediction, stem);
    let reference_lines = tokenize_lines(reference, stem);
    // Newlines separate tokens anyway, so a text's tokens are its lines' tokens in order.
    let prediction: Vec<&str> = prediction_lines
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let reference: Vec<&str> = reference_lines
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    PairScores {
        rouge1: ngram_score(&prediction, &reference, 1),
        rouge2: ngram_score(&prediction, &reference, 2),
        rouge_l: Score::from_counts(
            LcsTable::new(&reference, &prediction).length(),
            prediction.len(),
            reference.len(),
        ),
        rouge_lsum: summary_lcs_score(&prediction_lines, &reference_lines),
    }
}

/// The mean over `(prediction, reference)` pairs of each pair's F-measures, the figure the
/// course reports; `None` for no pairs. Pairs are scored in parallel and summed in order, so the
/// result does not depend on the number of threads.
pub fn mean_fmeasures(pairs: &[(&str, &str)], stem: bool) -> Option<RougeMeans> {
    if pairs.is_empty() {
        return None;
    }
    let scores: Vec<PairScores> = pairs
        .par_iter()
        .map(|&(prediction, reference)| score(prediction, reference, stem))
        .collect();
    let mean = |fmeasure: fn(&PairScores) -> f64| {
        scores.iter().map(fmeasure).sum::<f64>() / scores.len() as f64
    };
    Some(RougeMeans {
        rouge1: mean(|s| s.rouge1.fmeasure),
        rouge2: mean(|s| s.rouge2.fmeasure),
        rouge_l: mean(|s| s.rouge_l.fmeasure),
        rouge_lsum: mean(|s| s.rouge_lsum.fmeasure),
    })
}

/// The tokens of each line of `text` (lines are split at `\n`), leaving out lines without any.
fn tokenize_lines(text: &str, stem: bool) -> Vec<Vec<String>> {
    text.split('\n')
        .map(|line| tokenize(line, stem))
        .filter(|tokens| !tokens.is_empty())
        .collect()
}

/// How often each item occurs.
fn counts<T: Hash + Eq>(items: impl IntoIterator<Item = T>) -> HashMap<T, usize> {
    let mut counts = HashMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

/// Clipped n-gram overlap: each reference n-gram matches at most as often as it occurs in the
/// prediction.
fn ngram_score(prediction: &[&str], reference: &[&str], n: usize) -> Score {
    let predicted = counts(prediction.windows(n));
    let referenced = counts(reference.windows(n));
    let hits = referenced
        .iter()
        .map(|(ngram, &count)| count.min(predicted.get(ngram).copied().unwrap_or(0)))
        .sum();
    Score::from_counts(hits, predicted.values().sum(), referenced.values().sum())
}

/// LCS lengths of all prefix pairs: cell `(i, j)` holds the LCS length of `reference[..i]` and
/// `candidate[..j]`.
struct LcsTable {
    width: usize,
    cells: Vec<usize>,
}

impl LcsTable {
    fn new<T: PartialEq>(reference: &[T], candidate: &[T]) -> Self {
        let width = candidate.len() + 1;
        let mut cells = vec![0; (reference.len() + 1) * width];
        for (i, r) in reference.iter().enumerate() {
            for (j, c) in candidate.iter().enumerate() {
                cells[(i + 1) * width + j + 1] = if r == c {
                    cells[i * width + j] + 1
                } else {
                    cells[i * width + j + 1].max(cells[(i + 1) * width + j])
                };
            }
        }
        Self { width, cells }
    }

    fn get(&self, i: usize, j: usize) -> usize {
        self.cells[i * self.width + j]
    }

    /// The LCS length of the whole sequences.
    fn length(&self) -> usize {
        self.cells[self.cells.len() - 1]
    }
}

/// Positions in `reference` of one longest common subsequence with `candidate`: the one
/// `rouge_score` reads back (from the end, preferring to drop a candidate token only when that
/// keeps a strictly longer LCS).
fn lcs_positions<T: PartialEq>(reference: &[T], candidate: &[T]) -> Vec<usize> {
    let table = LcsTable::new(reference, candidate);
    let (mut i, mut j) = (reference.len(), candidate.len());
    let mut positions = Vec::new();
    while i > 0 && j > 0 {
        if reference[i - 1] == candidate[j - 1] {
            positions.push(i - 1);
            i -= 1;
            j -= 1;
        } else if table.get(i, j - 1) > table.get(i - 1, j) {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    positions
}

/// Summary-level LCS (ROUGE paper, section 3.2) as `rouge_score` computes it: for each reference
/// line, the union of its LCS positions with every prediction line; a token of that union is a
/// hit only while both texts still have an unmatched occurrence of it, so no token counts twice.
fn summary_lcs_score(prediction: &[Vec<String>], reference: &[Vec<String>]) -> Score {
    let mut prediction_left = counts(prediction.iter().flatten());
    let mut reference_left = counts(reference.iter().flatten());
    let mut hits = 0;
    for line in reference {
        let union: BTreeSet<usize> = prediction
            .iter()
            .flat_map(|candidate| lcs_positions(line, candidate))
            .collect();
        for position in union {
            let token = &line[position];
            if let (Some(p), Some(r)) = (
                prediction_left.get_mut(token),
                reference_left.get_mut(token),
            ) && *p > 0
                && *r > 0
            {
                *p -= 1;
                *r -= 1;
                hits += 1;
            }
        }
    }
    let predicted = prediction.iter().map(Vec::len).sum();
    let referenced = reference.iter().map(Vec::len).sum();
    Score::from_counts(hits, predicted, referenced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .map(|line| line.split_whitespace().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn summary_lcs_unions_the_lines_lcs_as_in_the_rouge_paper() {
        // ROUGE paper, section 3.2: the union LCS of r = w1..w5 with c1 and c2 is w1 w2 w3 w5.
        let reference = words("w1 w2 w3 w4 w5");
        let prediction = words("w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5");
        let score = summary_lcs_score(&prediction, &reference);
        assert_eq!(score.recall, 4.0 / 5.0);
        assert_eq!(score.precision, 4.0 / 10.0);
    }

    #[test]
    fn summary_lcs_counts_a_repeated_token_once_per_occurrence() {
        // Both reference lines match the single "a" of the prediction; only one hit counts.
        let reference = words("a b\na c");
        let prediction = words("a");
        let score = summary_lcs_score(&prediction, &reference);
        assert_eq!((score.precision, score.recall), (1.0, 0.25));
    }

    #[test]
    fn lcs_readback_prefers_the_reference_side_on_ties() {
        // Both "a" and "b" are LCSs of length 1; rouge_score's read-back yields "a" here.
        assert_eq!(lcs_positions(&["a", "b"], &["b", "a"]), [0]);
    }

    #[test]
    fn tokenizer_keeps_ascii_letters_that_unicode_lowercasing_produces() {
        // KELVIN SIGN lowercases to "k", and dotted capital I to "i" + a combining dot.
        assert_eq!(
            tokenize("\u{212A}ELVIN \u{130}stanbul", false),
            ["kelvin", "i", "stanbul"]
        );
        assert_eq!(
            tokenize("Caf\u{e9} 3\u{2009}km, 42!", false),
            ["caf", "3", "km", "42"]
        );
    }
}
