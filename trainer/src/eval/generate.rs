//! Batched greedy decoding with a KV cache: prompts are left-padded to a common length, decoded
//! together, and each stops at its first stop token or after `max_new_tokens`.

use anyhow::Context;
use candle_core::Tensor;

use crate::model::llama::Llama;
use crate::model::pass::Pass;
use crate::tokenizer::Tokenizer;

/// Decoding settings.
#[derive(Debug, Clone, Copy)]
pub struct Decoding {
    /// Most tokens generated per prompt.
    pub max_new_tokens: usize,
    /// Prompts decoded together.
    pub batch_size: usize,
}

/// Greedily continues every prompt (already rendered with the chat template) and returns the
/// generated texts, stripped, in the prompts' order. `on_batch` is told how many are done.
pub fn generate(
    model: &Llama,
    tokenizer: &Tokenizer,
    prompts: &[String],
    decoding: Decoding,
    mut on_batch: impl FnMut(usize),
) -> anyhow::Result<Vec<String>> {
    let encoded = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            tokenizer
                .encode(p)
                .with_context(|| format!("encoding prompt {}", i + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Longest first, so each batch pads little and the slowest batch shows up early.
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].len()));
    let mut stop = tokenizer.stop_ids().to_vec();
    stop.extend(&model.config.eos_token_ids);
    let mut outputs = vec![String::new(); prompts.len()];
    let mut done = 0;
    for chunk in order.chunks(decoding.batch_size.max(1)) {
        let batch: Vec<&[u32]> = chunk.iter().map(|&i| encoded[i].as_slice()).collect();
        let generated = decode_batch(
            model,
            &batch,
            tokenizer.pad_id(),
            &stop,
            decoding.max_new_tokens,
        )?;
        for (&i, ids) in chunk.iter().zip(generated) {
            outputs[i] = tokenizer.decode(&ids)?.trim().to_string();
        }
        done += chunk.len();
        on_batch(done);
    }
    Ok(outputs)
}

/// Decodes one batch; returns each sequence's new tokens without the stop token.
fn decode_batch(
    model: &Llama,
    prompts: &[&[u32]],
    pad: u32,
    stop: &[u32],
    max_new: usize,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let b = prompts.len();
    let len = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    anyhow::ensure!(len > 0, "empty prompt");
    let limit = model.rope.max_positions();
    anyhow::ensure!(
        len + max_new <= limit,
        "prompt of {len} tokens + {max_new} new tokens exceeds the model's {limit} positions"
    );
    let pads: Vec<usize> = prompts.iter().map(|p| len - p.len()).collect();
    let mut ids = Vec::with_capacity(b * len);
    let mut positions = Vec::with_capacity(b * len);
    let mut mask = Vec::with_capacity(b * len);
    for (p, &pad_n) in prompts.iter().zip(&pads) {
        ids.extend(std::iter::repeat_n(pad, pad_n).chain(p.iter().copied()));
        positions.extend((0..len).map(|t| t.saturating_sub(pad_n) as u32));
        mask.extend((0..len).map(|t| u8::from(t >= pad_n)));
    }
    let mut cache = Vec::new();
    let mut pass = Pass {
        batch: b,
        seq: len,
        positions,
        rope: &model.rope,
        key_mask: Some(mask),
        dropout: None,
    };
    let mut logits = model.forward_cached(&ids, &pass, &mut cache)?;
    let mut out = vec![Vec::new(); b];
    let mut finished = vec![false; b];
    for step in 0..max_new {
        let next = argmax_rows(&logits)?;
        for (i, &tok) in next.iter().enumerate() {
            if !finished[i] {
                if stop.contains(&tok) {
                    finished[i] = true;
                } else {
                    out[i].push(tok);
                }
            }
        }
        if finished.iter().all(|&f| f) || step + 1 == max_new {
            break;
        }
        // Keys so far: the prompt and the tokens fed back before this one.
        let keys = len + step;
        let old_mask = pass.key_mask.take().unwrap_or_default();
        let mut new_mask = Vec::with_capacity(b * (keys + 1));
        for row in old_mask.chunks(keys) {
            new_mask.extend_from_slice(row);
            new_mask.push(1);
        }
        pass = Pass {
            batch: b,
            seq: 1,
            positions: pads.iter().map(|&p| (keys - p) as u32).collect(),
            rope: &model.rope,
            key_mask: Some(new_mask),
            dropout: None,
        };
        logits = model.forward_cached(&next, &pass, &mut cache)?;
    }
    Ok(out)
}

/// Index of each row's largest logit (the first one on ties, as `torch.argmax`).
fn argmax_rows(logits: &Tensor) -> anyhow::Result<Vec<u32>> {
    Ok(logits
        .to_dtype(candle_core::DType::F32)?
        .to_vec2::<f32>()?
        .iter()
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect())
}
