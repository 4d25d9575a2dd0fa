"""Where a GPU step's time goes on the host: the CPU use of each thread of a process (from
/proc) and the GPU's utilization (nvidia-smi), sampled while the process runs, over the window
that two lines of its stderr mark (for `quill-cuda bench`: its timed steps). A step bound by
the host shows one thread near 100 % and the GPU well below it. Used by gpu_bench.py."""
import os
import subprocess
import threading
import time
from pathlib import Path


class ThreadSampler(threading.Thread):
    """Samples process `pid` every `every` seconds; `communicate` reads its output and notes
    when a stderr line containing `start`, then one containing `end`, appeared."""

    def __init__(self, pid, start, end, every=0.2):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.markers = {"start": start, "end": end}
        self.marked = {}
        self.samples = []
        self.stop = threading.Event()

    def threads(self):
        tick = os.sysconf("SC_CLK_TCK")
        found = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                stat = Path(f"/proc/{self.pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            found[tid] = (comm, (int(fields[11]) + int(fields[12])) / tick)
        return found

    def run(self):
        while not self.stop.is_set():
            try:
                threads = self.threads()
            except OSError:
                return
            self.samples.append((time.monotonic(), threads, gpu_utilization()))
            time.sleep(self.every)

    def communicate(self, proc, timeout):
        """`proc.communicate(timeout=...)`, noting when the marker lines come on stderr."""
        out = []

        def read_stdout():
            out.append(proc.stdout.read())

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        # Past the limit the process is killed, which ends its output and the loop below.
        fired = threading.Event()

        def kill():
            fired.set()
            proc.kill()

        killer = threading.Timer(timeout, kill)
        killer.start()
        err = []
        for line in proc.stderr:
            err.append(line)
            for key, marker in self.markers.items():
                if marker in line and key not in self.marked:
                    self.marked[key] = time.monotonic()
        proc.wait()
        killer.cancel()
        reader.join()
        if fired.is_set():
            raise subprocess.TimeoutExpired(proc.args, timeout)
        return "".join(out), "".join(err)

    def summary(self):
        """CPU % of the five busiest threads and the GPU utilizations seen, between the first
        sample after the start line and the last one before the end line."""
        start, end = self.marked.get("start"), self.marked.get("end")
        window = [s for s in self.samples if (start is None or s[0] >= start) and (end is None or s[0] <= end)]
        if len(window) < 2:
            return {"window_s": 0, "note": "the timed steps were shorter than two samples"}
        (t0, first, _), (t1, last, _) = window[0], window[-1]
        busy = sorted(((cpu - first.get(tid, (comm, 0.0))[1]) / (t1 - t0) * 100, comm)
                      for tid, (comm, cpu) in last.items())[::-1]
        return {"window_s": round(t1 - t0, 2),
                "thread_cpu_percent": [[comm, round(percent)] for percent, comm in busy[:5]],
                "gpu_utilization_percent": [u for _, _, u in window if u is not None]}


def gpu_utilization(index=0):
    """GPU `index`'s utilization in %, or None without nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", "-i", str(index), "--query-gpu=utilization.gpu",
                              "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=2).stdout.split()
        return int(out[0]) if out else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
