"""End-to-end `modelzoo generate zoo_specs/tetris_seed.yaml`: time and peak memory, two engines.

Prints wall time and the peak resident memory of the whole process tree (driver, Ray's services
and workers; summed RSS sampled every 0.1 s, an upper bound since shared pages count once per
process) for the vectorised engine, and the same spec with ``--engine reference``. The reference
run of all 1000 models takes most of an hour on 2 cores, so by default it trains the first
``--reference-models`` models twice over (N and N/2) and extrapolates linearly: models are
independent, so T(1000) = T(N) + (1000 - N) * (T(N) - T(N/2)) / (N/2), fixed costs included once.
N/2 should be a multiple of (cores x 8 models per reference task), so both runs keep every core
busy for whole rounds of tasks (the default 64 is, on up to 4 cores).
``--full-reference`` measures it instead. Both runs use the same Ray setup and machine.

    python benchmarks/generate_tetris.py [--reference-models 64] [--full-reference]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def tree_rss_bytes(root: int) -> int:
    """Summed VmRSS of ``root`` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def run(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak process-tree RSS of one `modelzoo` command."""
    env = {**os.environ, "TQDM_DISABLE": "1"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "modelzoo.cli", *args], env=env)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while process.poll() is None:
            peak = max(peak, tree_rss_bytes(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if process.wait() != 0:
        raise SystemExit(f"command failed: modelzoo {' '.join(args)}")
    sampler.join()
    return time.perf_counter() - started, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="zoo_specs/tetris_seed.yaml")
    parser.add_argument("--reference-models", type=int, default=64)
    parser.add_argument("--full-reference", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        base = ["generate", options.spec, "--quiet"]
        vec_time, vec_rss = run([*base, "--store", str(store / "vectorized")])
        print(
            f"vectorized : {vec_time:8.1f} s for the whole zoo, peak RSS {vec_rss / 2**30:.2f} GiB"
        )
        ref = [*base, "--engine", "reference"]
        if options.full_reference:
            ref_time, ref_rss = run([*ref, "--store", str(store / "reference")])
            how = "measured"
        else:
            n = options.reference_models
            half_time, _ = run([*ref, "--store", str(store / "half"), "--limit", str(n // 2)])
            full_time, ref_rss = run([*ref, "--store", str(store / "ref"), "--limit", str(n)])
            per_model = (full_time - half_time) / (n - n // 2)
            from modelzoo.spec import expand, load_spec

            total = len(expand(load_spec(options.spec)))
            ref_time = full_time + (total - n) * per_model
            how = f"extrapolated from {n // 2} and {n} models ({per_model:.2f} s per model)"
        print(
            f"reference  : {ref_time:8.1f} s for the whole zoo ({how}), peak RSS {ref_rss / 2**30:.2f} GiB"
        )
        print(f"speed-up   : {ref_time / vec_time:8.1f}x  (target >= 15x, vectorized under 30 s)")
        print(f"memory     : {vec_rss / 2**30:8.2f} GiB peak with Ray (target < 2 GiB)")


if __name__ == "__main__":
    main()
