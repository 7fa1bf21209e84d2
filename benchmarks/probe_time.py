"""Time of ``modelzoo probe`` per feature set on a zoo (issue 10 target: tetris_seed, 76,000
model-epochs, all feature sets but UMAP and embeddings, all targets, under 2 minutes on 2 cores).

    modelzoo generate tetris_seed --executor local
    python benchmarks/probe_time.py storage/tetris_seed

Prints seconds per feature set (transform fit + every target's probe), the loading time and the
total, against the 120 s target measured in the same run.
"""

from __future__ import annotations

import sys
import time

from modelzoo import open_zoo
from modelzoo.probe import run_probe

FEATURES = ["W", "sW", "pca_linear", "pca_cosine", "pca_rbf"]


def main(path: str) -> None:
    start = time.perf_counter()
    zoo = open_zoo(path)
    result = run_probe(zoo, FEATURES, progress=False)
    total = time.perf_counter() - start
    states = int(result.predictions.query("split == 'test'").groupby(["model_id", "epoch"]).ngroups)
    print(f"{zoo.name}: {len(zoo)} models, {len(result.kinds)} targets, {states} test states")
    for name, seconds in result.seconds.items():
        print(f"  {name:12s} {seconds:7.1f} s")
    print(f"  loading      {total - sum(result.seconds.values()):7.1f} s")
    print(f"total {total:.1f} s; target 120 s; ratio {total / 120:.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "storage/tetris_seed")
