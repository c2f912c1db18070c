//! A GGUF file: the model loader (header, `llama.*` metadata, every tensor dequantised) and the
//! tokenizer built from its metadata, as `setup::load_base` reads both.
#![no_main]

use candle_core::Device;
use ferrotune::model::load::{ModelSource, load, read_gguf_header};
use ferrotune::tokenizer::Tokenizer;
use ferrotune_fuzz::{fresh_dir, write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = fresh_dir("gguf").join("model.gguf");
    write(&path, data);
    let _ = load(&ModelSource::Gguf(path.clone()), &Device::Cpu);
    if let Ok(content) = read_gguf_header(&path)
        && let Ok(tokenizer) = Tokenizer::from_gguf(&content)
    {
        let _ = tokenizer.encode("Hello, world! 123 <|im_end|>");
    }
});
