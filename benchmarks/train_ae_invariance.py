"""How much of the hidden units' order each trained autoencoder's embedding keeps.

Why: a decoder trained to reproduce the *permuted view* it was given (the 2021 code's target)
can only do so if the embedding z still tells the permutations of one state apart. NT-Xent over
two permuted views pushes z(w) and z(perm w) together; if the encoder does that in z itself (not
only in the projection head), reconstruction R^2 collapses to roughly what the average over
permutations reaches. This script measures it on states of one split of the zoo:

* ``ratio`` = mean |z(w) - z(perm w)| / mean |z(w) - z(w')|, with ``perm`` a random permutation
  of the hidden units (function-preserving: rows of the layer's weights and bias, the next
  layer's columns) and ``w'`` another state of the split: ~0 means z ignores the order, ~1 means
  it moves as much as between two different states;
* the reconstruction R^2 (usual definition) of the clean states and of the permuted states
  against themselves.

For plain stacks of linear / convolutional layers (the tetris MLP, CNN-small): layers in layout
order, each module's ``weight`` and optional ``bias``; normalisation layers are not handled.

    python benchmarks/train_ae_invariance.py ZOO RUN [RUN ...] [--split val] [--states 3000]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np


def permute_hidden(flat: np.ndarray, layout, rng: np.random.Generator) -> np.ndarray:
    """Each row of ``flat`` with the hidden units of every layer but the last randomly permuted
    (a fresh permutation per row and layer): the same function, another order."""
    out = flat.copy()
    slots = [s for s in layout if not s.buffer]
    layers: dict[str, dict[str, object]] = {}
    for slot in slots:
        module, _, kind = slot.name.rpartition(".")
        layers.setdefault(module, {})[kind] = slot
    names = list(layers)
    for row in out:
        for this, following in itertools.pairwise(names):
            weight = layers[this]["weight"]
            units = weight.shape[0]
            order = rng.permutation(units)
            for kind in ("weight", "bias"):
                slot = layers[this].get(kind)
                if slot is not None:
                    size = int(np.prod(slot.shape))
                    part = row[slot.offset : slot.offset + size].reshape(units, -1)
                    row[slot.offset : slot.offset + size] = part[order].ravel()
            nxt = layers[following]["weight"]
            size = int(np.prod(nxt.shape))
            part = row[nxt.offset : nxt.offset + size].reshape(nxt.shape[0], units, -1)
            row[nxt.offset : nxt.offset + size] = part[:, order].ravel()
    return out


def r2(target: np.ndarray, output: np.ndarray) -> float:
    spread = np.square(target - target.mean(axis=0)).sum()
    return float(1.0 - np.square(output - target).sum() / spread)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zoo", type=Path, help="zoo folder the runs were trained on")
    parser.add_argument("runs", type=Path, nargs="+", help="train-ae run folders")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--states", type=int, default=3000, help="states drawn from the split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from modelzoo import open_zoo
    from modelzoo.hyperrep import load_autoencoder
    from modelzoo.hyperrep.data import read_states, recorded_pairs

    zoo = open_zoo(args.zoo)
    rng = np.random.default_rng(args.seed)
    for run in args.runs:
        rep = load_autoencoder(run)
        data = rep.config["data"]
        ids = zoo.select(status="ok").split(data["splits"], data["split_seed"])[args.split]
        epochs = list(zoo.epochs) if data["epochs"] is None else data["epochs"]
        w = read_states(zoo, recorded_pairs(zoo, ids, epochs))
        w = w[np.isfinite(w).all(axis=1)]
        w = w[rng.choice(len(w), min(args.states, len(w)), replace=False)]
        permuted = permute_hidden(w, zoo.layout, rng)
        other = w[rng.permutation(len(w))]
        z, zp, zo = rep.encode(w), rep.encode(permuted), rep.encode(other)
        ratio = np.linalg.norm(z - zp, axis=1).mean() / np.linalg.norm(z - zo, axis=1).mean()
        print(
            f"{run}: ratio {ratio:.3f}; R^2 clean {r2(w, rep.decode(z)):.3f}, "
            f"R^2 permuted {r2(permuted, rep.decode(zp)):.3f} ({len(w)} {args.split} states)"
        )


if __name__ == "__main__":
    main()
