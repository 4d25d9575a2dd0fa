# quill's tasks. `just` lists them; `just --show RECIPE` shows what one runs.

set shell := ["bash", "-euo", "pipefail", "-c"]
# Recipe arguments reach commands as "$@", so quoted prompts and values survive.
set positional-arguments := true

# Tests and binaries share the release profile, so burn is compiled once for both.
cargo_run := "cargo run --release --quiet -p"

# List the recipes.
default:
    @just --list --unsorted

# Download Tiny Shakespeare to data/ and verify it (copies a verified local copy when there is one).
data runner="quill-cpu":
    #!/usr/bin/env bash
    set -euo pipefail
    local_copy=../shared/data/tinyshakespeare.txt
    if [ -f "$local_copy" ]; then
        {{cargo_run}} {{runner}} -- data fetch --from "$local_copy"
    else
        {{cargo_run}} {{runner}} -- data fetch
    fi

# Train on the CPU (burn-flex; QUILL_CPU_BACKEND=ndarray for burn-ndarray). Extra args: --set KEY=VALUE, --name, --resume.
train-cpu config="configs/cpu-small.toml" *args:
    @just data quill-cpu
    @{{cargo_run}} quill-cpu -- train --config "$@"

# Train on a GPU through wgpu (Vulkan, Metal, DirectX).
train-wgpu config="configs/shakespeare-char.toml" *args:
    @just data quill-wgpu
    @{{cargo_run}} quill-wgpu -- train --config "$@"

# Train on an NVIDIA GPU through CUDA.
train-cuda config="configs/shakespeare-char.toml" *args:
    @just data quill-cuda
    @{{cargo_run}} quill-cuda -- train --config "$@"

# Sample from a run (default: the newest run in artifacts/), e.g. just generate "" --prompt "O Romeo".
generate run="" *args:
    #!/usr/bin/env bash
    set -euo pipefail
    run="$1"
    shift
    if [ -z "$run" ]; then
        run=$(ls -td artifacts/*/ 2>/dev/null | head -n 1)
        [ -n "$run" ] || { echo "error: no run in artifacts/; train one with just train-cpu" >&2; exit 1; }
    fi
    {{cargo_run}} quill-cpu -- generate --run "$run" "$@"

# Type prompts and read continuations (default: the newest run), until end of input (Ctrl-D).
chat run="" *args:
    @just generate "$1" --interactive "${@:2}"

# Training and sampling speed at a config's shapes, one JSON line (BACKEND: cpu, wgpu or cuda).
bench config="configs/cpu-small.toml" backend="cpu" *args:
    @just data quill-{{backend}}
    @{{cargo_run}} quill-{{backend}} -- bench --config "$1" "${@:3}"

# quill's bench next to PyTorch's torch_ref.py, alternating runs; medians and ratio (TORCH_PYTHON: a python with torch).
bench-vs-torch config="configs/cpu-small.toml" *args:
    @just data quill-cpu
    cargo build --release --quiet -p quill-cpu
    python3 scripts/bench_vs_torch.py --config "$@"

# Run a sweep file's trials on the CPU into artifacts/NAME/TRIAL/ (resumable; --workers N, --status DIR), then write its report.
sweep file *args:
    @just data quill-cpu
    @{{cargo_run}} quill-cpu -- sweep --config "$@"

# Sweep benchmarks on the CPU: ASHA against its full grid (27 points), 2 workers × 1 thread against 1 × 2 (scripts/bench_sweeps.py).
bench-sweeps *args:
    @just data quill-cpu
    # The test build's feature set (it builds the runners too), so burn is compiled once.
    cargo test --release --workspace --no-run --quiet
    python3 scripts/bench_sweeps.py "$@"

# summary.md, summary.csv and loss plots for a sweep (artifacts/NAME) or a run directory.
report dir *args:
    @{{cargo_run}} quill-cpu -- report "$@"

# Print a config with defaults and overrides resolved.
config config="configs/cpu-small.toml" *args:
    @{{cargo_run}} quill-cpu -- config show --config "$@"

# On a machine with an NVIDIA GPU: CUDA vs CPU parity, then 300 steps of shakespeare-char and a bench.
gpu-check:
    cargo test --release -p quill-cuda --features cuda --test cuda -- --nocapture
    @just data quill-cuda
    {{cargo_run}} quill-cuda -- train --config configs/shakespeare-char.toml --name gpu-check --force --set train.max_steps=300 --set train.eval_interval=100 --set schedule.decay_steps=5000
    {{cargo_run}} quill-cuda -- bench --config configs/shakespeare-char.toml --steps 20

# Here (Rust toolchain): the three runners and the CUDA tests built, stripped and xz-packed into .gpu-bench/ with the data, for `just gpu-bench` on a GPU machine.
gpu-bench-pack:
    #!/usr/bin/env bash
    set -euo pipefail
    just data
    # The test build's feature set, so burn is compiled once for tests and binaries.
    cargo test --release --workspace --no-run --quiet
    mkdir -p .gpu-bench
    for bin in quill-cuda quill-wgpu quill-cpu; do
        strip -o ".gpu-bench/$bin" "${CARGO_TARGET_DIR:-target}/release/$bin"
        xz -T0 -6 -f ".gpu-bench/$bin"
    done
    # The GPU tests (tests/cuda.rs), same features plus quill-cuda's `cuda` marker.
    tests=$(cargo test --release --workspace --features quill-cuda/cuda --no-run --message-format=json --quiet \
        | python3 -c 'import json,sys; found=[m["executable"] for m in map(json.loads, sys.stdin.read().splitlines()) if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cuda" and m.get("executable")]; print(found[0]) if found else sys.exit("error: cargo built no cuda test executable")')
    strip -o .gpu-bench/quill-cuda-tests "$tests"
    xz -T0 -6 -f .gpu-bench/quill-cuda-tests
    cp data/tinyshakespeare.txt .gpu-bench/
    # The Vulkan loader (about 0.4 MB), for quill-wgpu on a GPU machine that lacks one;
    # gpu_bench.py uses it only there.
    # (awk reads to the end: an early exit would fail the pipe under pipefail.)
    loader=$(ldconfig -p | awk '$1 == "libvulkan.so.1" && /x86-64/ && !found {print $NF; found = 1}')
    if [ -n "$loader" ]; then cp -L "$loader" .gpu-bench/libvulkan.so.1; else echo "note: no Vulkan loader here to pack" >&2; fi
    if [ -f ../shared/bench/torch_ref.py ]; then cp ../shared/bench/torch_ref.py .gpu-bench/; fi
    du -sh .gpu-bench

# On a machine with an NVIDIA GPU, CUDA 13 and PyTorch (no Rust, no internet): cold and warm start, f32 and bf16-mixed (burn's and cuBLAS's products, burn's softmax against quill's) against PyTorch, the CUDA tests, 1000 steps, wgpu on Vulkan; a table and one JSON line.
gpu-bench *args:
    python3 scripts/gpu_bench.py "$@"

# Run every test (unit, end-to-end) of the workspace.
test:
    cargo test --release --workspace

# Formatting and lints, as CI wants them.
lint:
    cargo fmt --all -- --check
    cargo clippy --release --workspace --all-targets -- -D warnings
