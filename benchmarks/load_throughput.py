"""Loading throughput: ZooDataset through a DataLoader vs. a raw h5py read of the same rows.

Both are measured in the same run, on the same zoo and the same shuffled (model, epoch) samples,
in samples per second, with batches of 64:

* baseline: raw h5py, no modelzoo reader: per batch, the rows are grouped by shard and epoch and
  read with one sorted fancy-index call each (the fastest plain h5py way), then made a tensor;
* ZooDataset, flat vectors, through ``DataLoader(batch_size=64, shuffle=True)``: default
  (``cache="auto"``: the window's weights are read once and kept in memory) and streaming
  (``cache=False``: every batch read from HDF5, one vectorised read per batch).

Without ``--zoo`` a synthetic MNIST-SEED-shaped zoo (CNN-small, 2,464 parameters, 26 stored
epochs, random weights; no training, no MNIST files) is written through ZooWriter into a
temporary folder, and the epoch window 21-25 of the 2022 paper is read. Target: ratio >= 0.8.

    python benchmarks/load_throughput.py                    # ~30 s on 2 cores
    python benchmarks/load_throughput.py --zoo storage/mnist_seed --epochs 21 22 23 24 25
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelzoo import ZooDataset, open_zoo
from modelzoo.data import dataset_info
from modelzoo.evaluation import SCALAR_METRICS
from modelzoo.plan import plan
from modelzoo.spec import load_spec
from modelzoo.store.writer import ZooWriter
from modelzoo.train.result import RunResult

BATCH = 64


def synthetic_zoo(root: Path, models: int, per_shard: int = 100) -> Path:
    """An MNIST-SEED-shaped zoo with random weights, written by the real writer."""
    spec = load_spec("mnist_seed", [f"seeds.range=[1,{models}]", "training.epochs=25"])
    the_plan = plan(spec)
    info = dataset_info("mnist")
    dataset = {
        "name": info.name,
        "input_shape": list(the_plan.input_shape),
        "num_classes": the_plan.num_classes,
        "spec": spec.resolved["dataset"],
    }
    writer = ZooWriter(root / spec.name, spec, the_plan.runs, dataset, the_plan.layout)
    rng = np.random.default_rng(0)
    epochs = len(spec.stored_epochs())
    for start in range(0, models, per_shard):
        results = []
        for run in the_plan.runs[start : start + per_shard]:
            metrics = {name: rng.random(epochs) for name in SCALAR_METRICS}
            results.append(
                RunResult(
                    run.model_id,
                    run.key,
                    rng.normal(0, 0.1, (epochs, the_plan.parameters)).astype(np.float32),
                    metrics,
                    rng.random((epochs, 10)).astype(np.float32),
                )
            )
        writer.add(results)
    return writer.dir


def raw_h5py(
    zoo_dir: Path, locations: tuple[np.ndarray, ...], order: np.ndarray, paths: list[Path]
) -> float:
    """Samples/s of plain h5py reads of the same rows in the same order, batch by batch."""
    files = [h5py.File(p, "r") for p in paths]
    datasets = [f["weights"] for f in files]
    shards, rows, epochs = locations
    started = time.perf_counter()
    for first in range(0, order.size, BATCH):
        batch = order[first : first + BATCH]
        out = np.empty((batch.size, datasets[0].shape[2]), np.float32)
        keys = shards[batch] * (1 << 20) + epochs[batch]
        for key in np.unique(keys):
            where = np.flatnonzero(keys == key)
            wanted = np.unique(rows[batch][where])
            block = datasets[int(key >> 20)][wanted.tolist(), int(key & ((1 << 20) - 1))]
            out[where] = block[np.searchsorted(wanted, rows[batch][where])]
        torch.from_numpy(out)
    seconds = time.perf_counter() - started
    for f in files:
        f.close()
    return order.size / seconds


def through_loader(dataset: ZooDataset, workers: int) -> float:
    loader = DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
    )
    started = time.perf_counter()
    count = 0
    for batch in loader:
        count += batch["weights"].shape[0]
    return count / (time.perf_counter() - started)


def best_of(repeats: int, measure) -> float:
    return max(measure() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", type=Path, help="an existing zoo (default: a synthetic one)")
    parser.add_argument("--models", type=int, default=500, help="models of the synthetic zoo")
    parser.add_argument(
        "--epochs",
        type=int,
        nargs="*",
        default=None,
        help="epoch window (default 21-25 if stored, else all)",
    )
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--repeats", type=int, default=3, help="best of N passes")
    args = parser.parse_args()
    tmp = None
    try:
        if args.zoo is None:
            tmp = Path(tempfile.mkdtemp(prefix="modelzoo-bench-"))
            started = time.perf_counter()
            args.zoo = synthetic_zoo(tmp, args.models)
            print(
                f"synthetic zoo: {args.models} models written in "
                f"{time.perf_counter() - started:.1f} s"
            )
        zoo = open_zoo(args.zoo)
        window = args.epochs or ([e for e in range(21, 26) if e in zoo.epochs] or zoo.epochs)
        streamed = ZooDataset(zoo, "all", epochs=window, status=None, cache=False)
        cached = ZooDataset(zoo, "all", epochs=window, status=None, cache=True)
        locations = streamed._where
        order = torch.randperm(len(streamed), generator=torch.Generator().manual_seed(1)).numpy()
        paths = zoo._core.reader.paths
        raw = best_of(args.repeats, lambda: raw_h5py(zoo.path, locations, order, paths))
        fast = best_of(args.repeats, lambda: through_loader(cached, args.workers))
        slow = best_of(args.repeats, lambda: through_loader(streamed, args.workers))
        print(
            f"zoo            {zoo.name}: {len(zoo)} models, {zoo.parameters:,} parameters, "
            f"epochs {window[0]}..{window[-1]} -> {len(streamed):,} samples, batch {BATCH}"
        )
        print(f"raw h5py       {raw:12,.0f} samples/s")
        print(
            f"ZooDataset     {fast:12,.0f} samples/s  ratio {fast / raw:5.2f}  "
            "(cache='auto', in memory)"
        )
        print(
            f"ZooDataset     {slow:12,.0f} samples/s  ratio {slow / raw:5.2f}  "
            "(cache=False, streaming)"
        )
        print(
            f"target         ratio >= 0.80 for flat vectors: "
            f"{'met' if min(fast, slow) / raw >= 0.8 else 'NOT met'}"
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
