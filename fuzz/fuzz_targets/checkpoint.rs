//! A training checkpoint: `step-00000001/state.json` (the input up to its first NUL) and its
//! safetensors shards (the rest; the same bytes for every rank the state names, up to 4), each with
//! its correct CRC-32 file beside it so the input reaches the parser, found by
//! `checkpoint::newest` and read back by `checkpoint::restore`.
#![no_main]

use ferrotune::train::checkpoint::{newest, restore, shard_file};
use ferrotune_fuzz::{fresh_dir, split_at_nul, write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (state, shard) = split_at_nul(data);
    let root = fresh_dir("checkpoints");
    let dir = root.join("step-00000001");
    std::fs::create_dir(&dir).expect("creating the checkpoint directory");
    write(&dir.join("state.json"), state);
    let world = serde_json::from_slice::<serde_json::Value>(state)
        .ok()
        .and_then(|v| v.get("world_size")?.as_u64())
        .map_or(1, |w| w.clamp(1, 4) as usize);
    let crc = format!("{:08x}\n", crc32fast::hash(shard));
    for rank in 0..world {
        let name = shard_file(rank, world);
        write(&dir.join(&name), shard);
        write(&dir.join(format!("{name}.crc32")), crc.as_bytes());
    }
    // The trainable tensors of the seed checkpoints (fuzz/corpus/checkpoint).
    let trainable = [("a".to_string(), 4), ("b".to_string(), 2)];
    if let Ok(Some(ckpt)) = newest(&root) {
        let _ = restore(&ckpt, &trainable);
    }
});
