#!/usr/bin/env python3
"""quill's training speed next to PyTorch's on the same shapes, batch, steps and threads.

Runs `quill-<backend> bench` and ../shared/bench/torch_ref.py (the same model and recipe in
PyTorch) alternately, RUNS times each, and prints both medians and the ratio quill / PyTorch for
tokens/s and peak resident memory. Machines are shared and noisy: only the side-by-side ratio
means much. Used by `just bench-vs-torch`; needs a Python with torch (set TORCH_PYTHON, e.g. a
virtualenv's python).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd):
    """Runs cmd; returns its last JSON line, with `peak_rss_mb` its own peak resident memory."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        # wait4 reaps this one child and reports its resource use, maximum RSS in KiB (Linux).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"error: {' '.join(cmd)} failed:\n{err.read().strip()}")
        line = [l for l in out.read().splitlines() if l.startswith("{")][-1]
    result = json.loads(line)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/cpu-small.toml")
    ap.add_argument("--backend", default="cpu", choices=["cpu", "wgpu", "cuda"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per run")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads on both sides")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--torch-ref", default=str(ROOT.parent / "shared/bench/torch_ref.py"))
    ap.add_argument("--data", default="data/tinyshakespeare.txt")
    a = ap.parse_args()

    quill = str(ROOT / "target/release" / f"quill-{a.backend}")
    shown = subprocess.run([quill, "config", "show", "--config", a.config],
                           capture_output=True, text=True, check=True).stdout
    config = tomllib.loads(shown)
    m, t = config["model"], config["train"]
    if m["positional"] != "learned" or m["bias"] or not m["tie_weights"] or m["ff_width"] not in (0, 4 * m["n_embd"]):
        sys.exit("error: torch_ref.py implements learned positions, no bias, tied head, 4x MLP only")
    python = os.environ.get("TORCH_PYTHON", "python3")
    torch_device = "cuda" if a.backend == "cuda" else "cpu"
    torch_cmd = [python, a.torch_ref, "--data", a.data,
                 "--n-layer", str(m["n_layer"]), "--n-head", str(m["n_head"]),
                 "--n-embd", str(m["n_embd"]), "--block-size", str(m["block_size"]),
                 "--batch-size", str(t["batch_size"]), "--dropout", str(m["dropout"]),
                 "--iters", str(a.warmup + a.steps), "--warmup-steps", str(a.warmup),
                 "--eval-batches", "1", "--threads", str(a.threads), "--device", torch_device]
    quill_cmd = [quill, "bench", "--config", a.config, "--steps", str(a.steps),
                 "--warmup", str(a.warmup), "--threads", str(a.threads),
                 "--generate-tokens", "10"]
    sides = {"quill": quill_cmd, "pytorch": torch_cmd}
    if a.compile:
        sides["pytorch-compile"] = torch_cmd + ["--compile"]
    results = {name: [] for name in sides}
    for i in range(a.runs):
        for name, cmd in sides.items():
            r = run(cmd)
            results[name].append(r)
            print(f"run {i + 1}/{a.runs} {name}: {r['tokens_per_s']:.0f} tokens/s, "
                  f"{r['ms_per_step']:.1f} ms/step, {r['peak_rss_mb']:.0f} MiB", flush=True)
    median = {name: statistics.median(r["tokens_per_s"] for r in rs) for name, rs in results.items()}
    summary = {
        "config": a.config, "backend": a.backend, "threads": a.threads, "runs": a.runs,
        "steps": a.steps,
        "quill_tokens_per_s": round(median["quill"]),
        "pytorch_tokens_per_s": round(median["pytorch"]),
        "ratio_quill_over_pytorch": round(median["quill"] / median["pytorch"], 3),
        "quill_peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in results["quill"])),
        "pytorch_peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in results["pytorch"])),
    }
    if a.compile:
        summary["pytorch_compile_tokens_per_s"] = round(median["pytorch-compile"])
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
