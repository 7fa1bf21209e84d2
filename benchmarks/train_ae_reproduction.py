"""The issue-11 targets on one zoo, measured in one run on the same splits: PCA vs ED vs EcD.

For a zoo (default: the generated tetris_seed), this script

1. fits PCA with ``--latent`` components on the train split's states (raw weights, every state
   in the epoch window ``data.epochs`` the autoencoders train on) and measures its reconstruction R^2 on the test split's states;
   and once more on the train states each permuted by one of 120 fixed hidden-unit permutations
   (``pca_permuted``: a linear model that sees the augmentation the autoencoders see);
2. trains the ``ed`` and the ``ecd`` presets with ``modelzoo train-ae`` (through the Python API,
   ``--epochs`` each, the given ``--set`` overrides), timing each;
3. re-measures each autoencoder's test-split reconstruction R^2 from its run folder
   (``load_autoencoder(dir).decode(encode(w))``) with scikit-learn's ``r2_score``
   (``variance_weighted``: 1 - SSE / total sum of squares, the usual definition), independently of
   the trainer's own log;
4. fits a linear probe (ridge, alpha chosen by cross-validation on the train split) from the
   train split's EcD embeddings, from its raw weights W and from their PCA code to test accuracy,
   and reports the probes' R^2 on the test split.

Every number is also measured on the validation split. ``--splits val`` prints and records the
validation numbers only: use it for pilot runs that choose settings (epochs, lr, sizes), so the
choice never sees the test split; run the chosen settings once with the default ``val,test``.

It prints one table and the ratios the issue asks for (ED >= PCA; EcD >= 0.85 PCA; EcD probe >=
W probe), and writes them as JSON to ``--json``. For each autoencoder it also records the epoch
whose weights were used (``train.select``) and the trainer's logged R^2 at that epoch (``r2_*``,
``paper_r2_*``: the 2021 code's definition) when that epoch was an R^2 epoch (``eval_every``).

    python benchmarks/train_ae_reproduction.py storage/tetris_seed --epochs 20 --out /tmp/ae-repro
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def states(zoo, ids: np.ndarray, epochs: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw weights, model ids and test accuracies of every finite recorded state of ``ids`` in
    the epoch window (the one train-ae trains on: ``data.epochs``)."""
    from modelzoo.hyperrep.data import read_states, recorded_pairs

    pairs = recorded_pairs(zoo, ids, epochs)
    weights = read_states(zoo, pairs)
    metrics = zoo.metrics.set_index(["model_id", "epoch"])["test_acc"]
    acc = metrics.loc[list(zip(pairs["model_id"], pairs["epoch"]))].to_numpy(dtype=np.float64)
    keep = np.isfinite(weights).all(axis=1)
    return weights[keep], pairs["model_id"].to_numpy()[keep], acc[keep]


def r2(target: np.ndarray, output: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(target, output, multioutput="variance_weighted"))


def probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray):
    """Ridge regression (standardised inputs, alpha by 5-fold CV on train) -> test R^2."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15), cv=5))
    model.fit(train_x, train_y)
    return float(model.score(test_x, test_y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zoo", type=Path, help="zoo folder (e.g. storage/tetris_seed)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the two run folders")
    parser.add_argument("--epochs", type=int, default=20, help="train-ae epochs per preset")
    parser.add_argument("--latent", type=int, default=50, help="latent size = PCA components")
    parser.add_argument("--presets", default="ed,ecd", help="comma-separated presets to train (empty: the baselines only)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="train-ae override KEY=VALUE for both presets (repeatable)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: all cores; 1 on a busy shared box)")  # fmt: skip
    parser.add_argument("--splits", default="val,test",
                        help="splits to evaluate: 'val' for pilots that choose settings")  # fmt: skip
    args = parser.parse_args()
    splits = args.splits.split(",")
    if not set(splits) <= {"val", "test"} or not splits:
        parser.error(f"--splits: expected val and/or test, got {args.splits!r}")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from sklearn.decomposition import PCA

    from modelzoo import open_zoo
    from modelzoo.hyperrep import load_autoencoder
    from modelzoo.hyperrep.api import run_training
    from modelzoo.hyperrep.augment import permutation_pool
    from modelzoo.hyperrep.config import build_config
    from modelzoo.hyperrep.data import epoch_window
    from modelzoo.tokens import WeightStructure

    zoo = open_zoo(args.zoo)
    overrides = [f"model.latent={args.latent}", *args.overrides]
    base = build_config("ecd", overrides=overrides, epochs=args.epochs)
    parts = zoo.select(status="ok").split(base["data"]["splits"], base["data"]["split_seed"])
    window = epoch_window(zoo, base["data"]["epochs"])
    data = {name: states(zoo, parts[name], window) for name in ("train", *splits)}
    train_w, _, train_acc = data["train"]
    sizes = ", ".join(f"{len(data[name][0])} {name}" for name in data)
    print(f"{zoo.name}: epochs {window[0]}..{window[-1]} ({len(window)}): {sizes} states, "
          f"{zoo.parameters} parameters; torch threads {torch.get_num_threads()}")  # fmt: skip

    started = time.perf_counter()
    pca = PCA(n_components=args.latent, random_state=0).fit(train_w)
    results: dict[str, dict] = {"pca": {"seconds": time.perf_counter() - started}, "raw_w": {}}
    # the same PCA fitted on what the autoencoders see: each train state under one permutation
    # of hidden units from a pool of 120 (the 2021 augmentation; a function-preserving change)
    pool = permutation_pool(WeightStructure.of(zoo), 120, 0, "benchmark-pca-pool")
    pick = np.random.default_rng(0).integers(len(pool), size=len(train_w))
    pca_permuted = PCA(n_components=args.latent, random_state=0).fit(
        np.take_along_axis(train_w, pool[pick], axis=1))  # fmt: skip
    results["pca_permuted"] = {}
    for name in splits:
        w, _, acc = data[name]
        results["pca"][f"r2_{name}"] = r2(w, pca.inverse_transform(pca.transform(w)))
        results["pca_permuted"][f"r2_{name}"] = r2(
            w, pca_permuted.inverse_transform(pca_permuted.transform(w)))  # fmt: skip
        results["raw_w"][f"probe_{name}_acc"] = probe(train_w, train_acc, w, acc)
        # the PCA code as a probe input too: what a 50-number linear summary of W knows
        results["pca"][f"probe_{name}_acc"] = probe(
            pca.transform(train_w), train_acc, pca.transform(w), acc)  # fmt: skip
    for preset in filter(None, args.presets.split(",")):
        config = build_config(preset, overrides=overrides, epochs=args.epochs)
        out = args.out / preset
        started = time.perf_counter()
        run_training(zoo, config, out, preset=preset, progress=True)
        seconds = time.perf_counter() - started
        rep = load_autoencoder(out)
        z_train = rep.encode(train_w)
        log = rep.log.set_index("epoch")
        used = rep.epoch
        row = {"epochs": args.epochs, "used_epoch": used, "seconds": seconds, "run": str(out)}
        for name in splits:
            w, _, acc = data[name]
            z = rep.encode(w)
            row[f"r2_{name}"] = r2(w, rep.decode(z))
            row[f"probe_{name}_acc"] = probe(z_train, train_acc, z, acc)
            for column in (f"r2_{name}", f"paper_r2_{name}"):
                value = log[column].get(used, float("nan")) if column in log else float("nan")
                row[f"logged_{column}"] = float(value)
        results[preset] = row
        print(preset, json.dumps(row), flush=True)

    for name in splits:
        print(f"\n{name} split  {'R^2':>7} {'2021 R^2':>9} {'probe acc R^2':>14} {'minutes':>8}")
        for method, row in results.items():
            print(f"{method:10} {row.get(f'r2_{name}', float('nan')):7.3f} "
                  f"{row.get(f'logged_paper_r2_{name}', float('nan')):9.3f} "
                  f"{row.get(f'probe_{name}_acc', float('nan')):14.3f} "
                  f"{row.get('seconds', float('nan')) / 60:8.1f}")  # fmt: skip
        pca_r2 = results["pca"][f"r2_{name}"]
        if "ed" in results:
            print(
                f"ED / PCA R^2 ({name}): {results['ed'][f'r2_{name}'] / pca_r2:.3f} (target >= 1)"
            )
        if "ecd" in results:
            print(f"EcD / PCA R^2 ({name}): {results['ecd'][f'r2_{name}'] / pca_r2:.3f} "
                  "(target >= 0.85)")  # fmt: skip
            print(f"EcD probe {results['ecd'][f'probe_{name}_acc']:.3f} vs W probe "
                  f"{results['raw_w'][f'probe_{name}_acc']:.3f} ({name}; target: EcD higher)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
