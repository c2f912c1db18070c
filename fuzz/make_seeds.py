"""Writes the crafted seed inputs under fuzz/corpus/ (plain Python 3, no packages):

    python3 fuzz/make_seeds.py

- gguf/tiny-tokenizer-{smollm,llama-bpe}.gguf: a one-block llama (hidden 4, 2 heads / 1 KV head,
  head dim 2, FFN 8, F32 and F16 tensors) with a byte-level BPE tokenizer in its metadata (control and
  user-defined tokens, merges, bos/eos/eot/padding ids, a chat template), so one input reaches both the
  model loader and `Tokenizer::from_gguf`.
- safetensors_model/tiny-{tied,untied}: `config.json`, a NUL, then `model.safetensors` of that model.
- checkpoint/world1, checkpoint/world2-format2: `state.json`, a NUL, then a shard holding `step` and
  the value / exp_avg / exp_avg_sq parts of the tensors `a` (4 elements) and `b` (2), which the
  checkpoint target passes to `restore` as the trainable tensors.
- config/quickstart-overrides, rouge/*: the shipped quickstart config with overrides after a NUL, and
  prediction NUL reference pairs.

The other seeds are copies of repository files (see fuzz/README.md).
"""

import json
import pathlib
import struct

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN = 4, 2, 1, 2, 8
TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>", "H", "e", "l", "o", "Ġ", "w",
          "r", "d", "1", "2", "3", "He", "ll", "Ġw", "llo"]
TYPES = [3, 3, 3, 4] + [1] * (len(TOKENS) - 4)
MERGES = ["H e", "l l", "Ġ w", "ll o"]
VOCAB = len(TOKENS)
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def values(n, scale=1.0, offset=0.0):
    return [offset + scale * (((i * 37) % 17) / 17.0 - 0.5) for i in range(n)]


def hf_tensors(tied):
    """Hugging Face name -> (shape [out, in], f32 values)."""
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    shapes = {
        "model.embed_tokens.weight": (VOCAB, HIDDEN),
        "model.layers.0.input_layernorm.weight": (HIDDEN,),
        "model.layers.0.self_attn.q_proj.weight": (q, HIDDEN),
        "model.layers.0.self_attn.k_proj.weight": (kv, HIDDEN),
        "model.layers.0.self_attn.v_proj.weight": (kv, HIDDEN),
        "model.layers.0.self_attn.o_proj.weight": (HIDDEN, q),
        "model.layers.0.post_attention_layernorm.weight": (HIDDEN,),
        "model.layers.0.mlp.gate_proj.weight": (FFN, HIDDEN),
        "model.layers.0.mlp.up_proj.weight": (FFN, HIDDEN),
        "model.layers.0.mlp.down_proj.weight": (HIDDEN, FFN),
        "model.norm.weight": (HIDDEN,),
    }
    if not tied:
        shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    out = {}
    for name, shape in shapes.items():
        n = 1
        for d in shape:
            n *= d
        out[name] = (shape, values(n, 0.2, 1.0) if len(shape) == 1 else values(n))
    return out


# ---- safetensors ----

def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, raw bytes)."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(xs):
    return struct.pack(f"<{len(xs)}f", *xs)


def hf_model(tied):
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": 1,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 64,
        "tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": [2, 0],
    }
    if not tied:
        config["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    tensors = {}
    for i, (name, (shape, xs)) in enumerate(hf_tensors(tied).items()):
        if i % 3 == 1:  # some bf16: the top half of each f32
            raw = b"".join(struct.pack("<f", x)[2:] for x in xs)
            tensors[name] = ("BF16", shape, raw)
        else:
            tensors[name] = ("F32", shape, f32(xs))
    return json.dumps(config).encode() + b"\0" + safetensors(tensors, {"format": "pt"})


# ---- GGUF v3 ----

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gvalue(kind, v):
    if kind == STRING:
        return gstr(v)
    if kind == ARRAY:
        elem, items = v
        return struct.pack("<IQ", elem, len(items)) + b"".join(gvalue(elem, x) for x in items)
    fmt = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q",
           I64: "q", F64: "d"}[kind]
    return struct.pack("<" + fmt, v)


def permute(rows, heads, cols):
    """llama.cpp's interleaved-RoPE row order (HF row s*d/2 + i -> GGUF row 2i + s within a head)."""
    d = len(rows) // cols // heads
    out = [None] * (heads * d)
    for h in range(heads):
        for s in range(2):
            for i in range(d // 2):
                out[h * d + 2 * i + s] = rows[(h * d + s * d // 2 + i) * cols:(h * d + s * d // 2 + i + 1) * cols]
    return [x for r in out for x in r]


def gguf(pre):
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.layers.0.input_layernorm.weight": "blk.0.attn_norm.weight",
        "model.layers.0.self_attn.q_proj.weight": "blk.0.attn_q.weight",
        "model.layers.0.self_attn.k_proj.weight": "blk.0.attn_k.weight",
        "model.layers.0.self_attn.v_proj.weight": "blk.0.attn_v.weight",
        "model.layers.0.self_attn.o_proj.weight": "blk.0.attn_output.weight",
        "model.layers.0.post_attention_layernorm.weight": "blk.0.ffn_norm.weight",
        "model.layers.0.mlp.gate_proj.weight": "blk.0.ffn_gate.weight",
        "model.layers.0.mlp.up_proj.weight": "blk.0.ffn_up.weight",
        "model.layers.0.mlp.down_proj.weight": "blk.0.ffn_down.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    kvs = [
        ("general.architecture", STRING, "llama"),
        ("general.alignment", U32, 32),
        ("llama.block_count", U32, 1),
        ("llama.context_length", U32, 64),
        ("llama.embedding_length", U32, HIDDEN),
        ("llama.feed_forward_length", U32, FFN),
        ("llama.attention.head_count", U32, HEADS),
        ("llama.attention.head_count_kv", U32, KV_HEADS),
        ("llama.rope.dimension_count", U32, HEAD_DIM),
        ("llama.rope.freq_base", F32, 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("tokenizer.ggml.model", STRING, "gpt2"),
        ("tokenizer.ggml.pre", STRING, pre),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, TOKENS)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, TYPES)),
        ("tokenizer.ggml.merges", ARRAY, (STRING, MERGES)),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.eot_token_id", U32, 2),
        ("tokenizer.ggml.padding_token_id", U32, 0),
        ("tokenizer.chat_template", STRING, TEMPLATE),
    ]
    infos, data = b"", b""
    for i, (hf, (shape, xs)) in enumerate(hf_tensors(tied=False).items()):
        name = names[hf]
        if name == "blk.0.attn_q.weight":
            xs = permute(xs, HEADS, HIDDEN)
        if name == "blk.0.attn_k.weight":
            xs = permute(xs, KV_HEADS, HIDDEN)
        if len(shape) == 2 and i % 2 == 0:
            kind, raw = 1, struct.pack(f"<{len(xs)}e", *xs)  # F16
        else:
            kind, raw = 0, f32(xs)  # F32
        dims = list(reversed(shape))
        infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", kind, len(data))
        data += raw + b"\0" * (-len(raw) % 32)
    n_tensors = len(hf_tensors(tied=False))
    out = b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(kvs))
    out += b"".join(gstr(k) + struct.pack("<I", t) + gvalue(t, v) for k, t, v in kvs)
    out += infos
    out += b"\0" * (-len(out) % 32)
    return out + data


# ---- checkpoint ----

def checkpoint(world, fmt):
    state = {"format": fmt, "step": 1, "total_steps": 10, "mode": "lora", "seed": 42,
             "world_size": world, "strategy": "ddp" if world == 1 else "zero3",
             "trainable_elements": 6, "train_seconds": 1.5}
    tensors = {"step": ("I64", [1], struct.pack("<q", 1))}
    for name, n in [("a", 4), ("b", 2)]:
        for part, scale in [("value", 1.0), ("exp_avg", 0.1), ("exp_avg_sq", 0.01)]:
            tensors[f"{name}@0/{part}"] = ("F32", [n], f32(values(n, scale)))
    return json.dumps(state, indent=2).encode() + b"\0" + safetensors(tensors)


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def main():
    repo = CORPUS.parent.parent
    for pre in ["smollm", "llama-bpe"]:
        write("gguf", f"tiny-tokenizer-{pre}.gguf", gguf(pre))
    write("safetensors_model", "tiny-tied", hf_model(tied=True))
    write("safetensors_model", "tiny-untied", hf_model(tied=False))
    write("checkpoint", "world1", checkpoint(1, 3))
    write("checkpoint", "world2-format2", checkpoint(2, 2))
    quickstart = (repo / "configs" / "quickstart.yaml").read_bytes()
    write("config", "quickstart-overrides", quickstart + b"\0training.learning_rate=1e-4\nlora.r=8\n"
          b"training.mode=qlora\ndata.format=jsonl\n")
    pairs = [line for line in (repo / "trainer/tests/fixtures/rouge/pairs.jsonl").read_text().splitlines()]
    for i in [0, 1, 5, 17, 40, 99]:
        if i < len(pairs):
            p = json.loads(pairs[i])
            write("rouge", f"pair-{i:03}", p["prediction"].encode() + b"\0" + p["reference"].encode())
    write("rouge", "multiline", b"The cats were running.\nDogs barked loudly\n\0cats ran\nthe dogs barked 123\n")


if __name__ == "__main__":
    main()
