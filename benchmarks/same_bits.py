"""Do two versions of modelzoo store the same bits? Generates a few small zoos with each, compares.

A speed-up of the engine must not change what it stores. This script runs the same `modelzoo
generate` commands with the baseline's source tree and with this checkout's (same interpreter, same
torch: each on PYTHONPATH), into two stores, and compares every zoo exactly: the HDF5 weights,
per-epoch metrics, F1 scores, statuses and errors of every model, and the rows of models.parquet and
metrics.parquet (float columns compared as bits, NaN included). Only the timing column ``seconds``
is left out. The cases cover the tetris MLP (the issue-8 preview), a hyperparameter sample
(activations, initialisations, learning rates), SGD with momentum, weight decay and dropout, a
batch size that does not divide the training set, diverging models, groups whose models differ in
every per-model number, and the CNN of digits_seed (one model alone, too).

    git -C /path/to/repo archive main | tar -x -C /tmp/base    # the baseline's source tree
    python benchmarks/same_bits.py --baseline /tmp/base [--keep DIR]

Exit status 0 when every zoo agrees bit for bit, 1 otherwise (each difference is printed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq

SGD_EVERYTHING = (
    "--set training.optimizer=sgd --set training.momentum=0.9 "
    "--set training.weight_decay=1e-3 --set training.dropout=0.2"
)
CASES: dict[str, list[str]] = {
    name: args.split()
    for name, args in {
        "tetris_preview": "tetris_seed --limit 20",
        "tetris_hyp_sample": "tetris_hyp --sample 24 --set training.epochs=3",
        "tetris_sgd_dropout": f"tetris_seed --limit 12 --set training.epochs=3 {SGD_EVERYTHING}",
        "tetris_ragged_batch": "tetris_seed --limit 8 --set training.epochs=3 "
        "--set training.batch_size=32",
        "tetris_diverging": "{diverging}",
        "tetris_mixed_sgd": "{mixed_sgd}",
        "digits_mixed_adam": "{mixed_adam}",
        "digits_cnn": "digits_seed --limit 10 --set training.epochs=2",
        "digits_cnn_sgd_dropout": f"digits_seed --limit 6 --set training.epochs=2 {SGD_EVERYTHING}",
        "digits_cnn_alone": "digits_seed --limit 1 --set training.epochs=2",
    }.items()
}


CHECKOUT = Path(__file__).resolve().parent.parent


# Inline specs: tetris MLPs with learning rates from sensible to absurd (the last three diverge in
# epoch 1), and a grid in which the models of one group differ in every per-model number.
SPECS = {
    "diverging": """
name: diverging
description: some of these diverge
source: modelzoo benchmarks/same_bits.py
dataset: {name: tetris}
architecture: {name: tetris_mlp}
training: {epochs: 3, batch_size: 10, optimizer: sgd, weight_decay: 0.0, dropout: 0.0,
           activation: tanh, init: normal}
grid: {training.lr: [1.0e-2, 1.0e+3, 1.0e+20, 1.0e+38]}
seeds: {range: [1, 3]}
""",
    "mixed_sgd": """
name: mixed_sgd
description: per-model learning rate, momentum, weight decay and dropout in one group
source: modelzoo benchmarks/same_bits.py
dataset: {name: tetris}
architecture: {name: tetris_mlp}
training: {epochs: 3, batch_size: 10, optimizer: sgd, activation: tanh, init: xavier_uniform}
grid: {training.lr: [1.0e-2, 1.0e-1], training.momentum: [0.0, 0.9],
       training.weight_decay: [0.0, 1.0e-3], training.dropout: [0.0, 0.3]}
seeds: {range: [1, 2]}
""",
    "mixed_adam": """
name: mixed_adam
description: per-model learning rate, weight decay and dropout in one group
source: modelzoo benchmarks/same_bits.py
dataset: {name: digits}
architecture: {name: cnn_tiny}
training: {epochs: 2, batch_size: 32, optimizer: adam, activation: relu, init: kaiming_uniform}
grid: {training.lr: [1.0e-3, 3.0e-3], training.weight_decay: [0.0, 1.0e-3],
       training.dropout: [0.0, 0.2]}
seeds: {range: [1, 2]}
""",
}


def generate(source: Path, args: list[str], store: Path, name: str) -> None:
    """`modelzoo generate` with the modelzoo package of the source tree ``source``."""
    store.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(source.resolve())}
    paths = {}
    for spec_name, text in SPECS.items():
        paths[spec_name] = store / f"{spec_name}.yaml"
        paths[spec_name].write_text(text)
    args = [arg.format(**paths) for arg in args]
    command = [sys.executable, "-m", "modelzoo.cli", "generate", *args, "--store", str(store / name),
               "--executor", "local", "--quiet"]  # fmt: skip
    # run outside any checkout: `python -m` would import modelzoo from the working directory
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=store, env=env)


def zoo_dir(store: Path, name: str) -> Path:
    (zoo,) = [p for p in (store / name).iterdir() if p.is_dir()]
    return zoo


def shard_arrays(zoo: Path) -> dict[int, dict[str, np.ndarray]]:
    """Every stored array of every model, keyed by model id (shards may be named differently)."""
    models: dict[int, dict[str, np.ndarray]] = {}
    for path in sorted((zoo / "shards").glob("*.h5")):
        with h5py.File(path, "r") as handle:
            ids = handle["model_ids"][:]
            for row, model_id in enumerate(ids):
                arrays = {key: np.asarray(handle[key][row]) for key in handle if key != "model_ids"}
                arrays["metrics"] = arrays["metrics"][..., :-1]  # the last column is `seconds`
                models[int(model_id)] = arrays
    return models


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shapes and equal bits (so NaN equals NaN, and -0.0 differs from 0.0)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fiub":
        return a.tobytes() == b.tobytes()
    return bool(np.all(a == b))


def compare(base: Path, new: Path) -> list[str]:
    problems = []
    a, b = shard_arrays(base), shard_arrays(new)
    if sorted(a) != sorted(b):
        return [f"model ids differ: {sorted(a)} vs {sorted(b)}"]
    for model_id in sorted(a):
        for key in a[model_id]:
            if not same(a[model_id][key], b[model_id][key]):
                problems.append(f"model {model_id}: {key} differs")
    for table in ("models.parquet", "metrics.parquet"):
        x, y = pq.read_table(base / table), pq.read_table(new / table)
        keys = ["model_id", "epoch"] if "epoch" in x.column_names else ["model_id"]
        order = [(key, "ascending") for key in keys]
        x, y = x.sort_by(order), y.sort_by(order)
        if x.column_names != y.column_names or x.num_rows != y.num_rows:
            problems.append(f"{table}: columns or row count differ")
            continue
        for column in x.column_names:
            if column == "seconds" or column == "shard":  # timing; shard file names
                continue
            if not same(x[column].to_numpy(zero_copy_only=False),
                        y[column].to_numpy(zero_copy_only=False)):  # fmt: skip
                problems.append(f"{table}: column {column} differs")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True,
                        help="source tree of the baseline (a folder holding modelzoo/)")  # fmt: skip
    parser.add_argument("--checked", type=Path, default=CHECKOUT,
                        help="source tree to check (default: this checkout)")  # fmt: skip
    parser.add_argument("--keep", type=Path, default=None, help="keep both stores in this folder")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = options.keep or Path(tmp)
        failed = 0
        for name in options.cases:
            generate(options.baseline, CASES[name], root / "baseline", name)
            generate(options.checked, CASES[name], root / "checked", name)
            problems = compare(zoo_dir(root / "baseline", name), zoo_dir(root / "checked", name))
            print(f"{name:24s} {'identical' if not problems else 'DIFFERENT'}")
            for problem in problems[:10]:
                print(f"    {problem}")
            failed += bool(problems)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
