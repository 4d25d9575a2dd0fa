#!/usr/bin/env python3
"""`just gpu-bench`: quill on one NVIDIA GPU next to PyTorch, everything in one call.

Made for a machine that has the NVIDIA driver, CUDA 13 and PyTorch but no Rust toolchain and no
internet: it runs the `quill-cuda` and `quill-wgpu` binaries that `just gpu-bench-pack` built
and packed elsewhere (.gpu-bench/, xz-compressed), with a fresh kernel cache, and prints a
markdown table and one JSON line. Sections run in order of importance, each with its own time
limit inside an overall budget (default 450 s), so a slow section costs only itself:

Each section's figures come from the command's own JSON line (`bench`, torch_ref.py).

  1. quill-cuda bench, f32, cold kernel cache: time to the first step, ms/step
  2. the same again, warm: time to the first step, kernels compiled (0 when the cache works);
     then the matrix products through cuBLAS (QUILL_MATMUL=cublas, f32 and bf16-mixed) against
     burn's, and attention's softmax as burn's composition (QUILL_SOFTMAX=burn) against quill's
     fused kernels (the default); the GPU tests
     (`quill-cuda-tests`, each test in its own process: cuBLAS's products and gradients
     against burn's and the model on them against burn-ndarray, then quill's kernels against
     burn's and the model against burn-ndarray); each weight gradient as one product
     (QUILL_WEIGHT_GRAD_SPLIT=1) against quill-cuda's 8 partial products; and the pre-flight
     memory check on a model too big for the GPU. The warm f32, bf16-mixed (4.) and cuBLAS
     benches run 60 timed steps and record each host thread's CPU use and the GPU's
     utilization over them (`host`, scripts/host_sampler.py): is the step bound by the host?
  3. PyTorch (torch_ref.py) eager f32 (strict f32 products, PyTorch's default; then with TF32
     products allowed, as quill's f32 products are and nanoGPT's) and eager --amp bf16, same
     model, batch and dropout
  4. quill-cuda bench, train.precision = "bf16-mixed"
  5. 1000 steps of shakespeare-char (bf16-mixed): val loss and wall time; then the same steps
     of configs/shakespeare-modern.toml (the modern recipe), evaluated every 125 steps
  6. PyTorch --compile --amp bf16
  7. quill-wgpu (Vulkan on the same GPU): bench, also with burn's softmax, and eval of the
     1000-step run on both backends, with cuBLAS's products and with burn's softmax (parity);
     on a machine without a Vulkan loader, with the pack's libvulkan.so.1 (`vulkan_loader` in
     gpu_bench.json says which)
  8. f32 without dropout on both sides (quill's attention without attention dropout)
  9. the data-parallel paths on the one GPU (issue 15; overhead, not scaling): bench with two
     replicas of GPU 0 (`--devices 0,0`), and the same short training as one process and as
     two nodes on 127.0.0.1 (`--nodes 2`, gradients all-reduced through the host)

With --cublas-first, the cuBLAS sections (f32 and bf16-mixed benches, the cuBLAS test) run
before 1., on the empty cache: the cold start with cuBLAS's products, and the figures that
decide whether they become the default, before anything else spends the budget.

Every command's output goes to --out/commands.log (default $OUT, else gpu-bench-out/).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

from gpu_bench_machine import gpu_name, summary_of, unpack, vulkan_loader
from gpu_bench_report import report
from host_sampler import ThreadSampler

ROOT = Path(__file__).resolve().parent.parent
# Timed steps of the benches whose host threads are sampled: enough for a window of a second.
HOST_STEPS = 60
# quill-cuda's matrix products through cuBLAS instead of burn's (quill-cublas).
CUBLAS = {"QUILL_MATMUL": "cublas"}
# Attention's softmax as burn's composition, not one kernel forward and one backward
# (quill-gpu-kernels, the default).
BURN_SOFTMAX = {"QUILL_SOFTMAX": "burn"}
CONFIG = "configs/shakespeare-char.toml"
# The modern recipe at shakespeare-char's size (section 5's second run).
MODERN_CONFIG = "configs/shakespeare-modern.toml"
# torch_ref.py run with TF32 products allowed (nanoGPT's setting), its own file unchanged.
TORCH_TF32 = ("import runpy, sys, torch; torch.backends.cuda.matmul.allow_tf32 = True; "
              "torch.backends.cudnn.allow_tf32 = True; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
# configs/shakespeare-char.toml's model and batch, for torch_ref.py.
TORCH_SHAPE = ["--n-layer", "6", "--n-head", "6", "--n-embd", "384", "--block-size", "256",
               "--batch-size", "64", "--dropout", "0.2"]


class Bench:
    def __init__(self, a):
        self.a = a
        self.deadline = time.monotonic() + a.budget
        self.out = Path(a.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.results = {}
        self.host = {}
        self.env = dict(os.environ)
        self.env.setdefault("CUDA_PATH", "/usr/local/cuda")
        # cuBLAS (QUILL_MATMUL=cublas) is loaded at run time from the toolkit's libraries; only
        # quill's cuBLAS runs get the toolkit's folder (PyTorch keeps its own libraries).
        lib = str(Path(self.env["CUDA_PATH"]) / "lib64")
        paths = [p for p in self.env.get("LD_LIBRARY_PATH", "").split(":") if p]
        self.cublas = {**CUBLAS, "LD_LIBRARY_PATH": ":".join(paths if lib in paths else paths + [lib])}
        self.env["QUILL_KERNEL_CACHE"] = str(a.cache)
        icd = Path("/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json")
        standard = [Path(d) / "nvidia_icd.json" for d in
                    ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d")]
        if "VK_DRIVER_FILES" not in self.env and icd.exists() and not any(p.exists() for p in standard):
            self.env["VK_DRIVER_FILES"] = str(icd)

    def left(self):
        return self.deadline - time.monotonic()

    def run(self, name, cmd, limit, env=None, sample=False):
        """Runs cmd with at most `limit` seconds (less when the budget is short); returns
        (stdout, wall seconds) or None, with the reason recorded. With `sample`, the CPU use
        of each of its threads and the GPU's utilization over its last second or so (its timed
        steps, for a bench) go to results[name]["host"]: a host-bound step shows one thread
        near 100 % and the GPU well below it."""
        if self.a.only and name not in self.a.only:
            return None
        limit = min(limit, self.left() - 5)
        if limit < 15:
            self.results[name] = {"skipped": "out of time"}
            print(f"[{name}] skipped: out of time", flush=True)
            return None
        print(f"[{name}] {' '.join(map(str, cmd))} (limit {limit:.0f} s)", flush=True)
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**self.env, **(env or {})}, cwd=self.a.workdir)
        # bench's progress lines on stderr mark its timed steps, the window sampled.
        sampler = ThreadSampler(proc.pid, start="timed steps", end="sampling") if sample else None
        try:
            if sampler:
                sampler.start()
                out, err = sampler.communicate(proc, timeout=limit)
            else:
                out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            wall = time.monotonic() - started
            self.log(name, out, err)
            self.results[name] = {"error": f"timed out after {wall:.0f} s"}
            print(f"[{name}] timed out after {wall:.0f} s", flush=True)
            return None
        finally:
            if sampler:
                sampler.stop.set()
                sampler.join()
        wall = time.monotonic() - started
        self.log(name, out, err)
        if sampler:
            self.host[name] = sampler.summary()
        if proc.returncode != 0:
            tail = (err or out or "").strip().splitlines()[-3:]
            self.results[name] = {"error": f"exit {proc.returncode}: {' | '.join(tail)[-300:]}"}
            print(f"[{name}] failed: {self.results[name]['error']}", flush=True)
            return None
        print(f"[{name}] done in {wall:.1f} s", flush=True)
        return out, wall

    def log(self, name, stdout, stderr):
        def text(x):
            return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")
        # One file for all commands: the device tool brings back at most eight files.
        with open(self.out / "commands.log", "a") as f:
            f.write(f"===== {name}: stdout =====\n{text(stdout)}\n===== {name}: stderr =====\n{text(stderr)}\n")

    def nodes(self, name, cmd, limit, runs):
        """Runs cmd as two nodes of one run on 127.0.0.1 (ranks 0 and 1, run directories
        `runs[0]` and `runs[1]`); returns node 0's summary.json, or None."""
        if self.a.only and name not in self.a.only:
            return None
        limit = min(limit, self.left() - 5)
        if limit < 15:
            self.results[name] = {"skipped": "out of time"}
            return None
        print(f"[{name}] two nodes of {' '.join(map(str, cmd))} (limit {limit:.0f} s)", flush=True)
        started = time.monotonic()
        # Output to files, not pipes: a node whose pipe nobody reads would block.
        logs = [open(self.out / f"{name}-node{rank}.log", "w+") for rank in (0, 1)]
        procs = [subprocess.Popen([*cmd, "--name", runs[rank], "--nodes", "2", "--node-rank", str(rank),
                                   "--coordinator", "127.0.0.1:29500", "--node-timeout", "60"],
                                  stdout=logs[rank], stderr=subprocess.STDOUT, text=True, env=self.env,
                                  cwd=self.a.workdir) for rank in (0, 1)]
        codes = []
        for proc, log in zip(procs, logs):
            try:
                proc.wait(timeout=max(1, limit - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.seek(0)
            self.log(name, log.read(), "")
            log.close()
            os.remove(log.name)
            codes.append(proc.returncode)
        if codes != [0, 0]:
            self.results[name] = {"error": f"exit codes {codes}"}
            return None
        summary = summary_of(self.a.workdir / "artifacts" / runs[0])
        self.results[name] = {**summary, "process_wall_s": time.monotonic() - started}
        return summary

    def json_line(self, name, cmd, limit, env=None, sample=False):
        got = self.run(name, cmd, limit, env, sample)
        if got is None:
            return None
        stdout, wall = got
        lines = [l for l in stdout.splitlines() if l.startswith("{")]
        if not lines:
            self.results[name] = {"error": "no JSON line"}
            return None
        result = json.loads(lines[-1])
        result["wall_s"] = wall
        if self.host.get(name):
            result["host"] = self.host[name]
        self.results[name] = result
        return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=str(ROOT / ".gpu-bench"), help="folder of quill-cuda, quill-wgpu, "
                    "quill-cpu and quill-cuda-tests (each maybe .xz)")
    ap.add_argument("--data", default=None, help="Tiny Shakespeare (default: data/ or the --bin folder)")
    ap.add_argument("--torch-ref", default=None, help="torch_ref.py (default: ../shared/bench or the --bin folder)")
    ap.add_argument("--budget", type=float, default=450, help="seconds for everything")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu-bench-out")
    ap.add_argument("--cache", default="/tmp/quill-gpu-bench/kernels", help="kernel cache, emptied first")
    ap.add_argument("--cache-from", default=None, help="a .tar.xz of a kernel cache folder (e.g. an earlier "
                    "call's --save-cache) to start from instead of an empty cache")
    ap.add_argument("--save-cache", action="store_true", help="write the kernel cache to --out/kernels.tar.xz at the end")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per quill bench (those whose host "
                    "threads are sampled take 60)")
    ap.add_argument("--train-steps", type=int, default=1000)
    ap.add_argument("--only", default="", help="comma-separated sections to run (default: all)")
    ap.add_argument("--cublas-first", action="store_true", help="run the cuBLAS sections (cuda_f32_cublas, "
                    "cuda_bf16_cublas, cuda_tests_cublas) first, on the empty cache, before cuda_f32_cold")
    ap.add_argument("--config", default=CONFIG, help="quill's config (a smoke test may use configs/tiny.toml; "
                    "PyTorch always runs shakespeare-char's shapes)")
    a = ap.parse_args()
    a.only = set(filter(None, a.only.split(",")))

    bin_dir = Path(a.bin)
    work = Path("/tmp/quill-gpu-bench")
    a.workdir = work / "run"
    shutil.rmtree(a.cache, ignore_errors=True)
    if a.cache_from:
        Path(a.cache).mkdir(parents=True)
        subprocess.run(["tar", "-xJf", str(Path(a.cache_from).resolve()), "-C", str(a.cache),
                        "--strip-components=1"], check=True)
    shutil.rmtree(a.workdir, ignore_errors=True)
    (a.workdir / "data").mkdir(parents=True)
    shutil.copytree(ROOT / "configs", a.workdir / "configs")
    data = next(p for p in [a.data, ROOT / "data/tinyshakespeare.txt", bin_dir / "tinyshakespeare.txt"]
                if p and Path(p).exists())
    shutil.copy(data, a.workdir / "data/tinyshakespeare.txt")
    torch_ref = next((p for p in [a.torch_ref, ROOT.parent / "shared/bench/torch_ref.py",
                                  bin_dir / "torch_ref.py"] if p and Path(p).exists()), None)
    bins = unpack(bin_dir, work / "bin")
    b = Bench(a)
    b.results["gpu"] = gpu_name()
    loader = vulkan_loader(bin_dir, work / "vulkan")
    b.results["vulkan_loader"] = loader or "missing"
    if loader not in (None, "system"):
        # The folder holds the loader alone: only what loads Vulkan (quill-wgpu) sees it.
        paths = [loader, *filter(None, b.env.get("LD_LIBRARY_PATH", "").split(":"))]
        b.env["LD_LIBRARY_PATH"] = ":".join(paths)
    print(f"GPU: {b.results['gpu']}; binaries: {bins}; torch_ref: {torch_ref}; "
          f"Vulkan loader: {b.results['vulkan_loader']}", flush=True)

    # A bug in one section must not cost the rest of the report (device time is short).
    try:
        cuda = bins.get("quill-cuda")
        def bench(steps, generate):
            return ["bench", "--config", a.config, "--steps", str(steps), "--warmup", "3",
                    "--generate-tokens", str(generate)]

        torch = [sys.executable, str(torch_ref), "--data", "data/tinyshakespeare.txt", "--device", "cuda",
                 *TORCH_SHAPE, "--iters", "50", "--warmup-steps", "10", "--eval-batches", "5"] if torch_ref else None
        run_name = "gpu-bench"
        tests = bins.get("quill-cuda-tests")

        def cublas_sections(cold):
            """The products through cuBLAS (f32 and bf16-mixed), against burn's own (cuda_f32_warm,
            cuda_bf16_mixed), then cuBLAS's GPU test. Sampled: each thread's CPU use and the GPU's
            utilization over the timed steps. With `cold`, they come first, on an empty cache:
            their first step is then the cold start with cuBLAS (no autotuning of burn's products)."""
            if cuda:
                b.json_line("cuda_f32_cublas", [cuda, *bench(HOST_STEPS, 0)], 300 if cold else 120, b.cublas,
                            sample=True)
                b.json_line("cuda_bf16_cublas", [cuda, *bench(HOST_STEPS, 0), "--set", "train.precision=bf16-mixed"],
                            150, b.cublas, sample=True)
            if tests:
                gpu_test("cuda_tests_cublas", "gpu::cublas", 150)

        def gpu_test(name, test, limit):
            """One test of the GPU tests (module `gpu`; the others run the quill-cuda of the build
            machine) in a process of its own."""
            got = b.run(name, [tests, test, "--nocapture", "--test-threads", "1"], limit, b.cublas)
            if got:
                passed = "test result: ok. 1 passed" in got[0]
                b.results[name] = {"passed": passed, "wall_s": got[1]}
            elif "error" in b.results.get(name, {}):
                b.results[name]["passed"] = False

        if a.cublas_first:
            cublas_sections(cold=True)
        if cuda:
            # Training only: sampling compiles kernels of its own shapes (timed further down).
            # A fresh machine compiles and tunes every kernel: over 200 s on an H200 (2026-11).
            b.json_line("cuda_f32_cold", [cuda, *bench(a.steps, 0)], 320)
            b.json_line("cuda_f32_warm", [cuda, *bench(HOST_STEPS, 0)], 60, sample=True)
            # burn's AdamW and clipping (tensor by tensor) against quill's kernels (the default).
            b.json_line("cuda_f32_burn_adamw", [cuda, *bench(HOST_STEPS, 0)], 60, {"QUILL_ADAMW": "burn"})
            # burn's layer norm (about a dozen kernels each way) against quill's (the default);
            # burn's are kernels this machine has not compiled yet.
            b.json_line("cuda_f32_burn_layer_norm", [cuda, *bench(HOST_STEPS, 0)], 90,
                        {"QUILL_LAYER_NORM": "burn"})
            # burn's head split (slices, views, copies; three padded gradients added) against quill's.
            b.json_line("cuda_f32_burn_split_heads", [cuda, *bench(HOST_STEPS, 0)], 90,
                        {"QUILL_SPLIT_HEADS": "burn"})
            # burn's composition of attention's softmax (about a dozen passes each way over the
            # [batch, head, seq, seq] weights) against quill's kernels (the default).
            b.json_line("cuda_f32_burn_softmax", [cuda, *bench(HOST_STEPS, 0)], 90, BURN_SOFTMAX)
            # burn's Dropout (a random mask per use, kept for the backward pass) on the residual
            # additions and the embedding, against quill's (one seed per forward pass, hashed masks).
            b.json_line("cuda_f32_burn_dropout", [cuda, *bench(HOST_STEPS, 0)], 90, {"QUILL_DROPOUT": "burn"})
        if not a.cublas_first:
            cublas_sections(cold=False)
        if tests:
            # quill's kernels against burn's, with burn's products.
            gpu_test("cuda_tests", "gpu::quills_kernels", 240)
        if cuda:
            # Each weight gradient as one product (quill-cuda computes it as 8 partial products).
            b.json_line("cuda_f32_split1", [cuda, *bench(a.steps, 0)], 120, {"QUILL_WEIGHT_GRAD_SPLIT": "1"})
            # The pre-flight memory check against the driver's free memory: a model that cannot
            # fit ends with one line before anything is compiled.
            got = b.run("cuda_memory_check", [cuda, "train", "--config", a.config, "--name", "too-big", "--force",
                                              "--set", "model.n_embd=16384", "--set", "model.n_head=128",
                                              "--set", "model.n_layer=48"], 60)
            if "cuda_memory_check" in b.results:
                b.results["cuda_memory_check"]["expected"] = "a one-line memory error, exit 1"
        if torch:
            b.json_line("torch_f32", torch, 60)
            # torch_ref.py leaves PyTorch's default, strict f32 products (no tensor cores), where
            # burn's and cuBLAS's f32 products in quill run on TF32 tensor cores, as nanoGPT's do
            # (`allow_tf32 = True`): this is the like-for-like figure.
            b.json_line("torch_f32_tf32", [sys.executable, "-c", TORCH_TF32, *torch[1:]], 60)
            b.json_line("torch_bf16", [*torch, "--amp", "bf16"], 60)
        if cuda:
            b.json_line("cuda_bf16_mixed", [cuda, *bench(HOST_STEPS, 0), "--set", "train.precision=bf16-mixed"], 150,
                        sample=True)
            b.json_line("cuda_bf16_burn_softmax", [cuda, *bench(HOST_STEPS, 0), "--set", "train.precision=bf16-mixed"],
                        90, BURN_SOFTMAX)
            steps = a.train_steps
            train = [cuda, "train", "--config", a.config, "--name", run_name, "--force",
                     "--set", f"train.max_steps={steps}", "--set", f"train.eval_interval={steps // 4}",
                     "--set", "train.precision=bf16-mixed"]
            got = b.run("cuda_train", train, 150)
            run = a.workdir / "artifacts" / run_name
            rows = (run / "metrics.csv").read_text().splitlines() if (run / "metrics.csv").exists() else []
            if got:
                summary = summary_of(run)
                b.results["cuda_train"] = {"process_wall_s": got[1], "steps": steps, **summary,
                                           "metrics_csv": rows}
            elif "cuda_train" in b.results and rows:
                # Cut by its limit: the evaluations it finished still say how it trains.
                b.results["cuda_train"]["metrics_csv"] = rows
            # The modern recipe (issue 41) on the same steps: does it reach nanoGPT's 1.4697
            # in fewer steps than shakespeare-char?
            modern = [cuda, "train", "--config", MODERN_CONFIG, "--name", run_name + "-modern", "--force",
                      "--set", f"train.max_steps={steps}", "--set", f"train.eval_interval={steps // 8}",
                      "--set", f"schedule.decay_steps={steps}", "--set", "train.precision=bf16-mixed"]
            got = b.run("cuda_train_modern", modern, 150)
            run = a.workdir / "artifacts" / (run_name + "-modern")
            rows = (run / "metrics.csv").read_text().splitlines() if (run / "metrics.csv").exists() else []
            if got:
                b.results["cuda_train_modern"] = {"process_wall_s": got[1], "steps": steps, **summary_of(run),
                                                  "metrics_csv": rows}
            elif "cuda_train_modern" in b.results and rows:
                b.results["cuda_train_modern"]["metrics_csv"] = rows
        if torch:
            b.json_line("torch_compile_bf16", [*torch, "--compile", "--amp", "bf16"], 150)
        wgpu = bins.get("quill-wgpu")
        if wgpu:
            b.json_line("wgpu_f32", [wgpu, *bench(10, 20)], 200)
            b.json_line("wgpu_f32_burn_softmax", [wgpu, *bench(10, 0)], 90, BURN_SOFTMAX)
        run = a.workdir / "artifacts" / run_name
        if (run / "best.mpk").exists():
            for name, binary, env in (("cuda_eval", cuda, None), ("cuda_eval_cublas", cuda, b.cublas),
                                      ("cuda_eval_burn_softmax", cuda, BURN_SOFTMAX),
                                      ("wgpu_eval", wgpu, None), ("wgpu_eval_burn_softmax", wgpu, BURN_SOFTMAX),
                                      ("cpu_eval", bins.get("quill-cpu"), None)):
                if binary:
                    got = b.run(name, [binary, "eval", "--run", str(run), "--batches", "20"], 90, env)
                    if got:
                        m = re.search(r"loss ([0-9.]+) nats", got[0])
                        b.results[name] = {"loss": float(m.group(1)) if m else None, "wall_s": got[1]}

        if cuda:
            b.json_line("cuda_generate", [cuda, "bench", "--config", a.config, "--generate-only",
                                          "--generate-tokens", "200"], 120)
        # Attention without dropout: burn's attention op (on autodiff, its composition) against
        # PyTorch's SDPA, both without dropout anywhere.
        if cuda:
            b.json_line("cuda_f32_dropout0", [cuda, *bench(a.steps, 0), "--set", "model.dropout=0.0"], 90)
        if torch:
            no_dropout = [x if x != "0.2" else "0.0" for x in torch]
            b.json_line("torch_f32_dropout0", no_dropout, 60)

        # The data-parallel paths on this one GPU: their overhead, not scaling (one GPU). The
        # batch stays 64 (the kernels above are cached); grad_accum 2 gives each replica one.
        if cuda:
            b.json_line("cuda_devices_00", [cuda, *bench(10, 0), "--set", "train.grad_accum=2",
                                            "--devices", "0,0"], 120)
            short = [cuda, "train", "--config", a.config, "--force", "--set", "train.max_steps=60",
                     "--set", "train.eval_interval=30", "--set", "train.eval_batches=2",
                     "--set", "train.grad_accum=2"]
            got = b.run("cuda_one_process", [*short, "--name", "one-process"], 90)
            if got:
                summary = summary_of(a.workdir / "artifacts/one-process")
                b.results["cuda_one_process"] = {**summary, "process_wall_s": got[1]}
            b.nodes("cuda_nodes_2", short, 120, ["node0", "node1"])
    except Exception:
        b.results["bench_error"] = traceback.format_exc()
        print(f"gpu_bench: a section failed; reporting what ran:\n{b.results['bench_error']}",
              file=sys.stderr, flush=True)
    b.results["cublas_first"] = a.cublas_first
    report(b.results)
    (b.out / "gpu_bench.json").write_text(json.dumps(b.results, indent=1))
    if a.save_cache:
        subprocess.run(["tar", "-cJf", str(b.out / "kernels.tar.xz"), "-C", str(Path(a.cache).parent),
                        Path(a.cache).name], check=False)


if __name__ == "__main__":
    main()
