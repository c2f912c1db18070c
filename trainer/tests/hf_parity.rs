//! The forward pass equals transformers' `LlamaForCausalLM` (fp32, eager attention) on the tiny
//! random models in tests/fixtures (made by their `make_fixture.py`), tied and untied, with
//! default and Llama-3 RoPE, and with a batch whose positions start past zero.

mod common;

use candle_core::{DType, Device, Tensor};
use ferrotune::model::llama::{Adaptation, Llama};
use ferrotune::model::load::{ModelSource, load};
use ferrotune::model::pass::Pass;
use ferrotune_config::Mode;

fn check(dir: &str) {
    let path = common::fixtures().join(dir);
    let loaded = load(&ModelSource::HfDir(path.clone()), &Device::Cpu).unwrap();
    let frozen = Adaptation {
        mode: Mode::Lora,
        lora: None,
    };
    let model = Llama::new(loaded.config, loaded.tensors, &frozen, 0).unwrap();
    let reference =
        candle_core::safetensors::load(path.join("reference.safetensors"), &Device::Cpu).unwrap();
    let mut batches = 0;
    while let Some(ids) = reference.get(&format!("input_ids_{batches}")) {
        let (b, t) = ids.dims2().unwrap();
        let as_u32 = |t: &Tensor| -> Vec<u32> {
            t.to_dtype(DType::U32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let positions = as_u32(&reference[&format!("position_ids_{batches}")]);
        let pass = Pass {
            batch: b,
            seq: t,
            positions,
            rope: &model.rope,
            key_mask: None,
            dropout: None,
        };
        let logits = model.logits(&as_u32(ids), &pass).unwrap();
        let expected = reference[&format!("logits_{batches}")]
            .reshape((b * t, ()))
            .unwrap();
        let diff = (logits - &expected)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let scale = expected
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            scale > 0.5,
            "{dir} batch {batches}: reference logits are suspiciously small ({scale})"
        );
        assert!(
            diff <= 1e-4,
            "{dir} batch {batches}: max |logit difference| {diff:e} > 1e-4"
        );
        batches += 1;
    }
    assert_eq!(batches, 3, "{dir}: expected three reference batches");
}

#[test]
fn logits_match_transformers_tied_default_rope() {
    check("tiny-llama");
}

#[test]
fn logits_match_transformers_untied_llama3_rope() {
    check("tiny-llama-untied");
}
