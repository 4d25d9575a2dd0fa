#!/usr/bin/env python3
"""Sweep benchmarks on the CPU runner (`just bench-sweeps`), each side by side in one run:

1. ASHA against the full grid: configs/sweeps/asha.toml (27 points, 270 steps, eta 3) and
   asha-grid.toml (the same 27 trained to the end). Reports where ASHA's best trial ranks in
   the grid and the share of the grid's optimizer steps ASHA trained.
2. Parallel trials: 8 tiny trials with workers = 2, threads = 1 against workers = 1,
   threads = 2, alternating, the median wall time of each.

Prints a table and one JSON line. Usage: scripts/bench_sweeps.py [--only asha|parallel]
[--repeats N] [--out DIR] (the quill-cpu release binary must be built).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
QUILL = os.path.join(TARGET, "release", "quill-cpu")


def events(sweep_dir):
    with open(os.path.join(sweep_dir, "study.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def study(sweep_dir):
    """Per trial: its group (the point), final status, best loss, steps trained."""
    trials = {}
    for e in events(sweep_dir):
        kind, tid = e["event"], e.get("trial")
        if kind == "planned":
            trials[tid] = {"group": e["group"], "status": "planned", "best": None, "step": 0}
        elif kind == "evaluated":
            trials[tid]["step"] = max(trials[tid]["step"], e["step"])
        elif kind == "finished":
            trials[tid].update(status="finished", best=e["best_val_loss"])
        elif kind == "pruned":
            trials[tid]["status"] = "pruned"
    return trials


def sweep(config, name, artifacts, env=None, extra=()):
    start = time.monotonic()
    subprocess.run(
        [QUILL, "sweep", "--config", config, "--name", name, "--artifacts", artifacts, *extra],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})},
    )
    return time.monotonic() - start


def bench_asha(artifacts):
    walls = {}
    for name in ["asha-grid", "asha"]:
        walls[name] = sweep(os.path.join(ROOT, "configs/sweeps", name + ".toml"), name, artifacts)
    grid = study(os.path.join(artifacts, "asha-grid"))
    asha = study(os.path.join(artifacts, "asha"))
    ranked = sorted((t["best"], t["group"]) for t in grid.values() if t["best"] is not None)
    finished = [(t["best"], t["group"]) for t in asha.values() if t["status"] == "finished"]
    best = min(finished)
    rank = 1 + [g for _, g in ranked].index(best[1])
    grid_steps = sum(t["step"] for t in grid.values())
    asha_steps = sum(t["step"] for t in asha.values())
    return {
        "asha_best": best[0],
        "asha_best_point": best[1],
        "asha_best_rank_in_grid": rank,
        "grid_best": ranked[0][0],
        "grid_steps": grid_steps,
        "asha_steps": asha_steps,
        "asha_steps_share": asha_steps / grid_steps,
        "asha_pruned": sum(t["status"] == "pruned" for t in asha.values()),
        "grid_wall_s": walls["asha-grid"],
        "asha_wall_s": walls["asha"],
    }


def bench_parallel(artifacts, repeats):
    data = os.path.join(ROOT, "data", "tinyshakespeare.txt")
    text = f"""base = "configs/tiny.toml"
[set]
"data.path" = {json.dumps(data)}
"train.max_steps" = 60
"train.eval_interval" = 30
"train.eval_batches" = 2
[sweep]
"optimizer.lr" = [3e-3, 2e-3, 1e-3, 7e-4, 5e-4, 3e-4, 2e-4, 1e-4]
"""
    config = os.path.join(artifacts, "parallel.toml")
    with open(config, "w") as f:
        f.write(text)
    walls = {"2x1": [], "1x2": []}
    for i in range(repeats):
        for key, workers, threads in [("2x1", 2, 1), ("1x2", 1, 2)]:
            name = f"parallel-{key}-{i}"
            # `threads` through the environment: trials inherit RAYON_NUM_THREADS.
            walls[key].append(sweep(config, name, artifacts, {"RAYON_NUM_THREADS": str(threads)}, ["--workers", str(workers)]))
            shutil.rmtree(os.path.join(artifacts, name))
    two, one = statistics.median(walls["2x1"]), statistics.median(walls["1x2"])
    return {"workers2_threads1_s": two, "workers1_threads2_s": one, "parallel_ratio": two / one, "parallel_runs": walls}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["asha", "parallel"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="keep the sweeps here (default: a temporary folder)")
    args = parser.parse_args()
    if not os.path.exists(QUILL):
        sys.exit(f"error: {QUILL} is missing; build it with cargo build --release -p quill-cpu")
    artifacts = args.out or tempfile.mkdtemp(prefix="quill-bench-sweeps-")
    os.makedirs(artifacts, exist_ok=True)
    result = {"machine": os.uname().nodename, "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    if args.only in (None, "parallel"):
        result.update(bench_parallel(artifacts, args.repeats))
        print(f"parallel: 8 trials, workers=2 threads=1 {result['workers2_threads1_s']:.1f} s vs workers=1 threads=2 {result['workers1_threads2_s']:.1f} s (median of {args.repeats}): ratio {result['parallel_ratio']:.2f}")
    if args.only in (None, "asha"):
        result.update(bench_asha(artifacts))
        print(f"asha: best {result['asha_best']:.4f} ({result['asha_best_point']}), rank {result['asha_best_rank_in_grid']} of 27 in the grid (grid best {result['grid_best']:.4f})")
        print(f"asha: {result['asha_steps']} of the grid's {result['grid_steps']} steps ({100 * result['asha_steps_share']:.0f}%), {result['asha_pruned']} trials pruned; wall {result['asha_wall_s']:.0f} s vs {result['grid_wall_s']:.0f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
