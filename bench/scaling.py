#!/usr/bin/env python3
"""Distributed scaling of ferrotune on this machine: one table of tokens/s and memory per rank
against world size and strategy.

For each world size and strategy it runs `train-throughput` (release build) with NPROC_PER_NODE
set, so the binary's launcher starts the ranks on loopback; each rank trains on its own
micro-batch (the global batch grows with the world, as in data-parallel scaling). Printed per row:
tokens/s over all ranks, scaling efficiency (tokens/s ÷ (world × the same strategy's world-1
tokens/s)), the parameter + optimizer state one rank holds (accounted by the trainer: model
weights, master copies, frozen shards, AdamW moments) and its ratio to DDP's at the same world
size, and the largest rank's peak RSS. Records are appended to --out as JSON lines.

  bench/scaling.py --model smollm2-135m --mode full --worlds 1,2,4 --seq-len 128 --micro-batch 2
  bench/scaling.py --table bench/results/cpu-scaling.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STRATEGIES = ("ddp", "zero2", "zero3")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, world: int, strategy: str) -> dict:
    cmd = [str(ROOT / "target" / "release" / "train-throughput"), "--model", args.model,
           "--mode", args.mode, "--strategy", strategy, "--seq-len", str(args.seq_len),
           "--micro-batch", str(args.micro_batch), "--steps", str(args.steps),
           "--warmup", str(args.warmup)]
    env = dict(os.environ, NPROC_PER_NODE=str(world), MASTER_PORT=str(free_port()))
    print("+ NPROC_PER_NODE=%d" % world, " ".join(cmd), file=sys.stderr, flush=True)
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"status": "error", "world": world, "strategy": strategy, "model": args.model,
                "mode": args.mode, "error": f"exit {out.returncode}"}
    return json.loads(lines[-1])


def table(rows: list[dict]) -> str:
    ok = [r for r in rows if r.get("status") == "ok"]
    base = {(r["model"], r["mode"], r["strategy"]): r["tokens_per_s"] for r in ok if r["world"] == 1}
    ddp = {(r["model"], r["mode"], r["world"]): max(r["state_mib_per_rank"])
           for r in ok if r["strategy"] == "ddp"}
    out = ["| model | mode | world | strategy | tokens/s (all ranks) | scaling efficiency | "
           "state MiB per rank | state / DDP's | peak RSS MiB (largest rank) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(ok, key=lambda r: (r["model"], r["mode"], r["world"],
                                       STRATEGIES.index(r["strategy"]))):
        one = base.get((r["model"], r["mode"], r["strategy"]))
        eff = f"{r['tokens_per_s'] / (r['world'] * one):.0%}" if one else "-"
        state = max(r["state_mib_per_rank"])
        d = ddp.get((r["model"], r["mode"], r["world"]))
        ratio = f"{state / d:.2f}×" if d else "-"
        out.append(f"| {r['model']} | {r['mode']} | {r['world']} | {r['strategy']} | "
                   f"{r['tokens_per_s']:.0f} | {eff} | {state:.0f} | {ratio} | "
                   f"{max(r['peak_rss_mib_per_rank']):.0f} |")
    for r in rows:
        if r.get("status") != "ok":
            out.append(f"| {r['model']} | {r['mode']} | {r['world']} | {r['strategy']} | "
                       f"{r.get('error')} | | | | |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--mode", default="full")
    p.add_argument("--worlds", default="1,2,4")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--micro-batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cpu-scaling.jsonl")
    p.add_argument("--table", type=Path, help="print the table of an earlier run's records")
    args = p.parse_args()
    if args.table:
        rows = [json.loads(l) for l in args.table.read_text().splitlines() if l.strip()]
    else:
        rows = [run(args, int(w), s) for w in args.worlds.split(",")
                for s in args.strategies.split(",")]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
