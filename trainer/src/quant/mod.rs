//! Weight quantisation: NF4 with double-quantised block scales (QLoRA).
