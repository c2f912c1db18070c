#!/usr/bin/env python3
"""ferrotune beside the PyTorch reference, same machine, same shapes: one table with ratios.

For each model x mode it runs `train-throughput` (ferrotune's own training loop, built with
`cargo build --release -p ferrotune-bench`) and `pytorch_reference.py` one after the other with
the same shape, sequence length, micro-batch and step counts, reads each one's JSON line, measures
each process's peak resident memory (wait4), and prints a markdown table with ours / PyTorch
ratios. Every record is appended to --out as JSON lines as soon as it is measured.

  bench/compare.py --device cpu --models smollm2-135m --modes lora,full --steps 3 --warmup 1
  bench/compare.py --table bench/results/cpu.jsonl        # table from an earlier run

The reference needs torch, transformers and peft (--python names that interpreter; default: this
one). On the CPU both run f32 (the reference with --dtype f32) on every core. On a GPU
(--device cuda, with --bin naming a CUDA build of train-throughput) both run bf16, and the memory
columns are peak GPU memory in use (the CUDA memory pool's high-water mark for ferrotune,
torch.cuda.max_memory_allocated for PyTorch) instead of process RSS.

  bench/compare.py --device cuda --bin /tmp/train-throughput --python /opt/torch/.venv/bin/python \
      --models smollm2-135m,llama-3.2-1b,llama-3.2-3b --modes full,lora,qlora --steps 20 --warmup 5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "bench" / "pytorch_reference.py"


def run_measured(cmd: list[str]) -> tuple[dict, float]:
    """Runs cmd; returns its last JSON line and its peak RSS in GiB."""
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        rec = {"status": "error", "error": f"exit {proc.returncode}"}
    else:
        rec = json.loads(lines[-1])
    return rec, usage.ru_maxrss / 2**20  # KiB -> GiB


def measure(args) -> list[dict]:
    ours_bin = Path(args.bin) if args.bin else ROOT / "target" / "release" / "train-throughput"
    rows = []
    for model in args.models.split(","):
        for mode in args.modes.split(","):
            common = ["--model", model, "--mode", mode, "--seq-len", str(args.seq_len),
                      "--micro-batch", str(args.micro_batch), "--steps", str(args.steps),
                      "--warmup", str(args.warmup), "--device", args.device,
                      "--peak-tflops", str(args.peak_tflops)]
            ours, ours_rss = run_measured([str(ours_bin), *common])
            ref_cmd = [args.python, args.reference, *common]
            if args.device == "cpu":
                ref_cmd += ["--dtype", "f32"]
            ref, ref_rss = run_measured(ref_cmd)
            for rec, rss, impl in ((ours, ours_rss, "ferrotune"), (ref, ref_rss, "pytorch")):
                rec.update(impl=impl, model=model, mode=mode, seq_len=args.seq_len,
                           micro_batch=args.micro_batch, process_peak_rss_gib=round(rss, 2),
                           date=time.strftime("%Y-%m-%d"), host=host())
                rows.append(rec)
                if args.out:  # as it goes, so that an interrupted run keeps what it measured
                    with open(args.out, "a") as f:
                        f.write(json.dumps(rec) + "\n")
    return rows


def host() -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.machine())
    return f"{cpu}, {os.cpu_count()} threads"


def table(rows: list[dict]) -> str:
    pairs: dict[tuple, dict] = {}
    for r in rows:
        pairs.setdefault((r["model"], r["mode"], r["seq_len"], r["micro_batch"]), {})[r["impl"]] = r
    gpu = any(r.get("peak_mem_gib") is not None for r in rows)
    mem_key, mem_name = ("peak_mem_gib", "peak GPU GiB") if gpu else ("process_peak_rss_gib", "peak RSS GiB")
    out = ["| model | mode | seq | micro-batch | ferrotune tokens/s | PyTorch tokens/s | speed ratio "
           f"| ferrotune {mem_name} | PyTorch {mem_name} | memory ratio | MFU ours / PyTorch "
           "| losses (first → last) ours / PyTorch |",
           "|" + "---|" * 12]
    for (model, mode, seq, mb), p in pairs.items():
        a, b = p.get("ferrotune", {}), p.get("pytorch", {})
        ok = a.get("status") == "ok" and b.get("status") == "ok"
        tps = lambda r: f"{r['tokens_per_s']:,.0f}" if r.get("status") == "ok" else r.get("status", "-")  # noqa: E731
        ratio = f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}×" if ok else "-"
        mem_a, mem_b = a.get(mem_key), b.get(mem_key)
        mem_ratio = f"{mem_a / mem_b:.2f}×" if ok and mem_a and mem_b else "-"
        mfu = lambda r: f"{100 * r['mfu']:.1f}%" if r.get("status") == "ok" and r.get("mfu") is not None else "-"  # noqa: E731
        loss = lambda r: f"{r.get('loss_first')} → {r.get('loss_last')}" if r.get("status") == "ok" else "-"  # noqa: E731
        out.append(f"| {model} | {mode} | {seq} | {mb} | {tps(a)} | {tps(b)} | {ratio} | {mem_a} | {mem_b} "
                   f"| {mem_ratio} | {mfu(a)} / {mfu(b)} | {loss(a)} / {loss(b)} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--models", default="smollm2-135m")
    ap.add_argument("--modes", default="lora,full")
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bin", help="train-throughput binary (default: target/release/train-throughput)")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--python", default=sys.executable, help="interpreter with torch, transformers, peft")
    ap.add_argument("--reference", default=str(REFERENCE),
                    help="pytorch_reference.py (default: ../shared/bench/ beside the repository)")
    ap.add_argument("--out", help="append the JSON records to this file")
    ap.add_argument("--table", metavar="JSONL", help="print the table of an earlier run and exit")
    args = ap.parse_args()
    if args.table:
        print(table([json.loads(l) for l in open(args.table) if l.strip()]))
        return
    print(table(measure(args)))


if __name__ == "__main__":
    main()
