//! TFRecord framing, the container of TensorBoard event files: each record is its payload's
//! length (u64, little-endian), the masked CRC-32C of those 8 bytes, the payload, and the masked
//! CRC-32C of the payload.

use crc::{CRC_32_ISCSI, Crc};

const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// The CRC-32C (Castagnoli) of `bytes`, rotated and offset as TFRecord stores it.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = CASTAGNOLI.checksum(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends one record holding `payload` to `out`.
pub fn append_record(out: &mut Vec<u8>, payload: &[u8]) {
    let length = (payload.len() as u64).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The catalogue check value of CRC-32C (iSCSI) for "123456789".
        assert_eq!(CASTAGNOLI.checksum(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn record_layout() {
        let mut out = Vec::new();
        append_record(&mut out, b"abc");
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(&out[..8], &3u64.to_le_bytes());
        assert_eq!(&out[12..15], b"abc");
        assert_eq!(out[8..12], masked_crc32c(&out[..8]).to_le_bytes());
        assert_eq!(out[15..], masked_crc32c(b"abc").to_le_bytes());
    }
}
