#!/usr/bin/env python3
"""Checks that a ferrotune output directory loads in transformers / PEFT, and prints their logits.

    check_hf_outputs.py OUTPUT_DIR [--base BASE_HF_DIR] [--input-ids 1,2,3] [--text TEXT]
                        [--out LOGITS.safetensors] [--compare FERROTUNE.safetensors] [--atol 1e-4]

- `OUTPUT_DIR/final_model/`, when present, is loaded with `AutoModelForCausalLM` (float32, eager attention)
  and `AutoTokenizer`.
- `OUTPUT_DIR/lora_adapters/`, when present, is applied with `peft.PeftModel.from_pretrained` to the base model
  (`--base`, else the adapter's `base_model_name_or_path`). The adapter is also merged by hand in numpy,
  W + (lora_alpha / r) * B @ A for every adapted projection, and both the merged weights
  (against PEFT's `merge_and_unload`) and the logits (against the PEFT model's) must agree to `--atol`.
- The forward pass runs on `--input-ids` (comma-separated), else on `--text` tokenised by the model's tokenizer.
  Logits are printed (shape, first values, greedy next token) and, with `--out`, written to a safetensors file
  as `input_ids`, `final_model.logits` and `lora_adapters.logits`. `--compare` reads a file with the same keys
  (ferrotune's logits) and fails when any differs by more than `--atol`.

Exit status: 0 when everything loads and agrees, 1 on a load error, 2 on a mismatch.
Needs torch, transformers, peft, safetensors and numpy (tested with transformers 5.24.0, peft 0.21.2, torch 2.15.0).
"""

import argparse
import json
import pathlib
import sys

import numpy as np
import torch
from safetensors.numpy import load_file, save_file


class CheckFailed(Exception):
    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def load_error(what, path, err):
    return CheckFailed(f"cannot load {what} from {path}: {type(err).__name__}: {err}", 1)


def load_model(path):
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    except Exception as err:  # any load failure is reported, not raised
        raise load_error("a transformers model", path, err)


def load_tokenizer(path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as err:
        raise load_error("a tokenizer", path, err)


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()


def report(label, out):
    print(f"{label}: logits {list(out.shape)}, last position first 5 {np.round(out[-1, :5], 5).tolist()}, "
          f"greedy next token {int(out[-1].argmax())}")


def check_close(label, got, want, atol):
    if got.shape != want.shape:
        raise CheckFailed(f"{label}: shapes differ, {list(got.shape)} vs {list(want.shape)}", 2)
    diff = float(np.abs(got - want).max()) if got.size else 0.0
    print(f"{label}: max |difference| {diff:.3g} (atol {atol:g})")
    if not np.isfinite(diff) or diff > atol:
        raise CheckFailed(f"{label} differ by {diff:.3g} > {atol:g}", 2)


def input_ids(args, tokenizer_dirs):
    if args.input_ids:
        try:
            return [int(t) for t in args.input_ids.split(",") if t.strip()]
        except ValueError:
            raise CheckFailed(f"--input-ids must be comma-separated integers, got {args.input_ids!r}", 1)
    for path in tokenizer_dirs:
        if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
            return load_tokenizer(path)(args.text)["input_ids"]
    raise CheckFailed("no tokenizer found to encode --text: pass --input-ids", 1)


def numpy_merged(base_dir, adapter_dir):
    """The base weights with every LoRA update added: W + (alpha / r) * B @ A."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    adapter = load_file(adapter_dir / "adapter_model.safetensors")
    weights = {}
    for file in sorted(base_dir.glob("*.safetensors")):
        weights.update(load_file(file))
    merged = {}
    for name, a in adapter.items():
        if not name.endswith(".lora_A.weight"):
            continue
        module = name[len("base_model.model."):-len(".lora_A.weight")]
        b = adapter[name.replace(".lora_A.", ".lora_B.")]
        w = weights[module + ".weight"].astype(np.float64)
        merged[module + ".weight"] = (w + scale * (b.astype(np.float64) @ a.astype(np.float64))).astype(np.float32)
    if not merged:
        raise CheckFailed(f"{adapter_dir / 'adapter_model.safetensors'} holds no lora_A tensors", 1)
    return merged


def check_adapters(adapter_dir, base_dir, ids, atol):
    from peft import PeftModel

    base_dir = pathlib.Path(base_dir) if base_dir else None
    if base_dir is None:
        try:
            base_dir = pathlib.Path(json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"])
        except Exception as err:
            raise load_error("adapter_config.json", adapter_dir, err)
    try:
        peft_model = PeftModel.from_pretrained(load_model(base_dir), adapter_dir).eval()
    except CheckFailed:
        raise
    except Exception as err:
        raise load_error("a PEFT adapter", adapter_dir, err)
    peft_logits = logits(peft_model, ids)

    by_hand = numpy_merged(base_dir, adapter_dir)
    merged_model = peft_model.merge_and_unload()
    state = merged_model.state_dict()
    for name, w in by_hand.items():
        check_close(f"merged {name}", state[name].float().numpy(), w, atol)
    reference = load_model(base_dir)
    with torch.no_grad():
        for name, w in by_hand.items():
            reference.get_parameter(name).copy_(torch.from_numpy(w))
    check_close("PEFT logits vs numpy-merged base logits", peft_logits, logits(reference, ids), atol)
    return peft_logits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", type=pathlib.Path)
    parser.add_argument("--base", help="base model directory or Hub id for lora_adapters/")
    parser.add_argument("--input-ids", help="comma-separated token ids")
    parser.add_argument("--text", default="Amanda: I baked cookies. Do you want some?\nJerry: Sure!")
    parser.add_argument("--out", type=pathlib.Path, help="write logits here (safetensors)")
    parser.add_argument("--compare", type=pathlib.Path, help="ferrotune logits to compare against (safetensors)")
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()

    final_dir = args.output_dir / "final_model"
    adapter_dir = args.output_dir / "lora_adapters"
    if not final_dir.is_dir() and not adapter_dir.is_dir():
        raise CheckFailed(f"{args.output_dir} has neither final_model/ nor lora_adapters/", 1)
    tokenizer_dirs = [final_dir, adapter_dir] + ([pathlib.Path(args.base)] if args.base else [])
    ids = input_ids(args, tokenizer_dirs)
    print(f"input ids ({len(ids)}): {ids[:16]}{' ...' if len(ids) > 16 else ''}")
    results = {"input_ids": np.array(ids, dtype=np.int64)}

    if final_dir.is_dir():
        load_tokenizer(final_dir)
        results["final_model.logits"] = logits(load_model(final_dir), ids)
        report("final_model", results["final_model.logits"])
    if adapter_dir.is_dir():
        results["lora_adapters.logits"] = check_adapters(adapter_dir, args.base, ids, args.atol)
        report("lora_adapters", results["lora_adapters.logits"])

    if args.out:
        save_file(results, args.out, metadata={"format": "pt"})
        print(f"wrote {args.out}")
    if args.compare:
        try:
            theirs = load_file(args.compare)
        except Exception as err:
            raise load_error("logits", args.compare, err)
        compared = [k for k in results if k.endswith(".logits") and k in theirs]
        if not compared:
            raise CheckFailed(f"{args.compare} has none of {[k for k in results if k.endswith('.logits')]}", 1)
        for key in compared:
            check_close(f"{key} vs {args.compare}", results[key], theirs[key], args.atol)
    print("OK")


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as failure:
        print(f"error: {failure}", file=sys.stderr)
        sys.exit(failure.status)
