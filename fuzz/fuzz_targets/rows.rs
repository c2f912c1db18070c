//! A dataset file read as JSONL (and the same bytes as a `.json` array), taking the quickstart
//! data's fields.
#![no_main]

use ferrotune::data::read_rows;
use ferrotune_config::DataFormat;
use ferrotune_fuzz::{fresh_dir, write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = fresh_dir("rows");
    let path = dir.join("rows.jsonl");
    write(&path, data);
    let _ = read_rows(&path, DataFormat::Jsonl, "dialogue", "summary");
    let _ = read_rows(&path, DataFormat::Json, "dialogue", "summary");
});
