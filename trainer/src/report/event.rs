//! The `tensorboard.Event` protobuf messages ferrotune writes, encoded by hand (the wire format
//! needs only varints, 64-bit doubles, 32-bit floats and length-delimited fields):
//!
//! ```text
//! Event      { double wall_time = 1; int64 step = 2; string file_version = 3;
//!              Summary summary = 5; SessionLog session_log = 7; }
//! Summary    { repeated Value value = 1; }
//! Value      { string tag = 1; float simple_value = 2; }
//! SessionLog { SessionStatus status = 1; }   // START = 1
//! ```

/// The version string of the event format TensorBoard expects first in every file.
pub const FILE_VERSION: &str = "brain.Event:2";

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;
const FIXED32: u64 = 5;
const SESSION_START: u64 = 1;

/// The first event of a file: its format version.
pub fn file_version(wall_time: f64) -> Vec<u8> {
    let mut event = header(wall_time, 0);
    bytes_field(&mut event, 3, FILE_VERSION.as_bytes());
    event
}

/// Scalars at `step`, one summary value per `(tag, value)`; TensorBoard stores them as f32.
pub fn scalars(wall_time: f64, step: i64, values: &[(&str, f64)]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, value) in values {
        let mut entry = Vec::new();
        bytes_field(&mut entry, 1, tag.as_bytes());
        key(&mut entry, 2, FIXED32);
        entry.extend_from_slice(&(*value as f32).to_le_bytes());
        bytes_field(&mut summary, 1, &entry);
    }
    let mut event = header(wall_time, step);
    bytes_field(&mut event, 5, &summary);
    event
}

/// A session start at `step`: TensorBoard then discards the events of earlier files at this
/// step and later, as a resumed run rewrites them.
pub fn session_start(wall_time: f64, step: i64) -> Vec<u8> {
    let mut log = Vec::new();
    key(&mut log, 1, VARINT);
    varint(&mut log, SESSION_START);
    let mut event = header(wall_time, step);
    bytes_field(&mut event, 7, &log);
    event
}

/// `wall_time` and (when not zero, as proto3 omits defaults) `step`.
fn header(wall_time: f64, step: i64) -> Vec<u8> {
    let mut event = Vec::new();
    key(&mut event, 1, FIXED64);
    event.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        key(&mut event, 2, VARINT);
        varint(&mut event, step as u64);
    }
    event
}

fn key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    varint(out, (field << 3) | wire_type);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, LENGTH_DELIMITED);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
