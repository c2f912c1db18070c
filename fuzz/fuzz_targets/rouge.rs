//! ROUGE: the tokenizer, the Porter stemmer and the four scores of a (prediction, reference) pair.
//! Input: the prediction, a NUL, the reference (each lossily UTF-8).
#![no_main]

use ferrotune::eval::{porter, rouge};
use ferrotune_fuzz::split_at_nul;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (prediction, reference) = split_at_nul(data);
    let prediction = String::from_utf8_lossy(prediction);
    let reference = String::from_utf8_lossy(reference);
    for word in prediction.split_whitespace() {
        let _ = porter::stem(word);
    }
    for stem in [false, true] {
        let _ = rouge::tokenize(&prediction, stem);
        let _ = rouge::score(&prediction, &reference, stem);
    }
    let _ = rouge::mean_fmeasures(&[(&prediction, &reference)], true);
});
