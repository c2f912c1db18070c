//! A GGUF file: the model loader (header, `llama.*` metadata, every tensor dequantised) and the
//! tokenizer built from its metadata, as `setup::load_base` reads both.
#![no_main]

use std::io::Cursor;

use candle_core::Device;
use candle_core::quantized::gguf_file::Content;
use ferrotune::model::load::{ModelSource, load};
use ferrotune::tokenizer::Tokenizer;
use ferrotune_fuzz::{fresh_dir, write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = fresh_dir("gguf").join("model.gguf");
    write(&path, data);
    let _ = load(&ModelSource::Gguf(path), &Device::Cpu);
    if let Ok(content) = Content::read(&mut Cursor::new(data)) {
        if let Ok(tokenizer) = Tokenizer::from_gguf(&content) {
            let _ = tokenizer.encode("Hello, world! 123 <|im_end|>");
        }
    }
});
