"""The cut-down seed 003 Table 1 attempt of docs/sample.md ("Reproduction"): a 100-model,
10-epoch tetris_seed zoo, small ``lwln`` and ``no-lwln`` autoencoders (40 epochs), then kde30
samples against training from scratch at epoch 0. On the shared 2-core CPU: ~10 minutes.

    PYTHONPATH=. python benchmarks/sample_reproduction.py [--root /tmp/sampler_repro]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from modelzoo.hyperrep import train_autoencoder
from modelzoo.run import generate
from modelzoo.sample import compare
from modelzoo.spec import load_spec

SMALL = {"model": {"d_model": 32, "heads": 2, "ff_dim": 64, "latent": 16},
         "data": {"epochs": [6, 7, 8, 9, 10]},
         "train": {"epochs": 40, "batch_size": 32, "checkpoint_every": 0, "eval_every": 40}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/sampler_repro"))
    root = parser.parse_args().root
    os.environ.setdefault("TQDM_DISABLE", "1")
    started = time.time()
    spec = load_spec("tetris_seed", ["training.epochs=10", "seeds.range=[1,100]"])
    zoo = generate(spec, root / "store", executor="local").zoo_dir
    print(f"zoo {time.time() - started:.0f} s", flush=True)
    for preset in ("lwln", "no-lwln"):
        out = root / preset
        if not out.exists():
            train_autoencoder(zoo, SMALL, preset=preset, out=out)
        print(f"{preset} {time.time() - started:.0f} s", flush=True)
        report = compare(out, "kde30", out=root / f"s-{preset}", n=50, anchor_epochs=[6, 7, 8, 9, 10])
        print(pd.read_csv(report / "report.csv").to_string(), flush=True)


if __name__ == "__main__":
    main()
