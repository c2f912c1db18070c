//! Tokenizers (tokenizer.json or GGUF metadata) and chat-template rendering.
