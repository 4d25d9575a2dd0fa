"""What `just gpu-bench` (scripts/gpu_bench.py) finds on the GPU machine: the packed runners,
the Vulkan loader, the GPU's name, and each run's summary."""

import json
import lzma
import re
import shutil
import stat
import subprocess
from pathlib import Path


def unpack(bin_dir, dest):
    """The runners, decompressed when packed as NAME.xz; returns {name: path}."""
    dest.mkdir(parents=True, exist_ok=True)
    found = {}
    for name in ("quill-cuda", "quill-wgpu", "quill-cpu", "quill-cuda-tests"):
        plain, packed = bin_dir / name, bin_dir / f"{name}.xz"
        if packed.exists():
            target = dest / name
            with lzma.open(packed) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            target.chmod(target.stat().st_mode | stat.S_IXUSR)
            found[name] = str(target)
        elif plain.exists():
            found[name] = str(plain)
    return found


def summary_of(run):
    """A run's summary.json, or an error entry: one section's odd end never loses the report."""
    path = Path(run) / "summary.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return {"error": f"{path}: {error}"}


def vulkan_loader(bin_dir, dest):
    """Where quill-wgpu finds the Vulkan loader: "system" when the machine has one, else the
    libvulkan.so.1 that `just gpu-bench-pack` carries, copied alone into `dest` (a folder for
    LD_LIBRARY_PATH that shadows no other library), else None."""
    try:
        listed = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        listed = ""
    if re.search(r"^\s*libvulkan\.so\.1 ", listed, re.M):
        return "system"
    carried = bin_dir / "libvulkan.so.1"
    if not carried.exists():
        return None
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(carried, dest / "libvulkan.so.1")
    return str(dest)


def gpu_name():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
