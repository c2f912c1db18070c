//! A Hugging Face model directory: `config.json` (the input up to its first NUL) and
//! `model.safetensors` (the rest), loaded as the trainer loads `model.path: <dir>`.
#![no_main]

use candle_core::Device;
use ferrotune::model::load::{ModelSource, load};
use ferrotune_fuzz::{fresh_dir, split_at_nul, write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (config, weights) = split_at_nul(data);
    let dir = fresh_dir("hf");
    write(&dir.join("config.json"), config);
    write(&dir.join("model.safetensors"), weights);
    let _ = load(&ModelSource::HfDir(dir), &Device::Cpu);
});
