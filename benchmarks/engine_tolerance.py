"""Measure the engine's drift from the reference against the run's own chaos (docs/engine.md).

For a sweep of configurations (architectures x optimisers x inits x seeds) on small random data,
trains each run with the reference trainer, with the three rounding-sized perturbations of
``modelzoo.train.tolerance`` and inside a group with ``train_vectorized``, and prints per
configuration the engine drift and the chaos at a few epochs, and their largest ratio. The
ratios are what ``CHAOS_FACTOR`` (8) must exceed with a margin; the same table shows how both grow
with the epochs. Runs above the factor are listed at the end: in docs/engine.md's sweep they are
max-pool tie flips (a window whose two largest inputs are closer than the two engines' rounding),
which no rounding-sized perturbation of the reference reproduces on demand. CPU only, one
intra-op thread (the engine's setting).

    PYTHONPATH=. python benchmarks/engine_tolerance.py            # the sweep of docs/engine.md
    PYTHONPATH=. python benchmarks/engine_tolerance.py --quick    # a few configurations
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from modelzoo.data import ImageData, TrainingData
from modelzoo.spec import Run
from modelzoo.train.reference import train_reference
from modelzoo.train.tolerance import CHAOS_FACTOR, one_thread, perturbed_references, weight_drift
from modelzoo.train.vectorized import train_vectorized

SHAPES = {"tetris_mlp": ((1, 4, 4), 4), "cnn_tiny": ((1, 8, 8), 10),
          "cnn_small": ((1, 28, 28), 10), "cnn_medium": ((3, 32, 32), 10)}  # fmt: skip
EPOCHS = {"tetris_mlp": 24, "cnn_tiny": 24, "cnn_small": 8, "cnn_medium": 6}
OPTIMISERS = {
    "adam": {"optimizer": "adam", "lr": 3e-3},
    "adam+wd+drop": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-3, "dropout": 0.25},
    "sgd+mom+drop": {"optimizer": "sgd", "lr": 0.02, "momentum": 0.9, "dropout": 0.3},
    "sgd+wd": {"optimizer": "sgd", "lr": 0.05, "weight_decay": 1e-2},
}
INITS = ("uniform", "xavier_uniform")


def random_data(architecture: str, train: int, seed: int) -> TrainingData:
    shape, classes = SHAPES[architecture]
    generator = torch.Generator().manual_seed(seed)

    def split(n: int) -> ImageData:
        return ImageData(torch.randn(n, *shape, generator=generator),
                         torch.randint(0, classes, (n,), generator=generator),
                         tuple(str(i) for i in range(classes)))  # fmt: skip

    return TrainingData(split(train), None, split(20))


def make_run(model_id: int, architecture: str, seed: int, **training) -> Run:
    values = {"epochs": EPOCHS[architecture], "batch_size": 10, "weight_decay": 0.0,
              "momentum": 0.0, "dropout": 0.0, "activation": "tanh", "loss": "cross_entropy",
              **training}  # fmt: skip
    return Run(model_id=model_id, seed=seed, dataset={"name": "random"},
               architecture={"name": architecture}, training=values,
               stored_epochs=tuple(range(values["epochs"] + 1)))  # fmt: skip


def measure(architecture: str, optimiser: str, init: str, seed: int) -> dict:
    training = {**OPTIMISERS[optimiser], "init": init}
    data = random_data(architecture, 48 if architecture in ("tetris_mlp", "cnn_tiny") else 30, seed)
    run = make_run(0, architecture, seed, **training)
    companion = make_run(1, architecture, seed + 1000, **training)  # a group of two
    with one_thread():
        reference = train_reference(run, data)
        engine = train_vectorized([run, companion], data)[0]
    perturbed = perturbed_references(run, data, reference)
    drifts = {name: weight_drift(result, reference) for name, result in perturbed.items()}
    chaos = np.max(list(drifts.values()), axis=0)
    ulp = np.spacing(np.abs(reference.weights).max(axis=1).astype(np.float32))
    floor = np.maximum(chaos, ulp)
    engine_drift = weight_drift(engine, reference)
    return {"engine": engine_drift, "chaos": chaos, "floor": floor, "drifts": drifts,
            "ratio": float(np.max(engine_drift[1:] / floor[1:]))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two architectures, one seed")
    parser.add_argument("--seeds", type=int, default=2)
    options = parser.parse_args()
    architectures = ["tetris_mlp", "cnn_tiny"] if options.quick else list(SHAPES)
    seeds = range(1, 2 if options.quick else options.seeds + 1)
    print(f"torch {torch.__version__}, CHAOS_FACTOR {CHAOS_FACTOR}; drift = max |w - w_ref|")
    print("config | epoch: engine / chaos (images, init, native-conv) | max engine/chaos")
    ratios, started = {}, time.perf_counter()
    for architecture, optimiser, init, seed in itertools.product(
        architectures, OPTIMISERS, INITS, seeds
    ):
        m = measure(architecture, optimiser, init, seed)
        ratios[f"{architecture} {optimiser} {init} seed {seed}"] = m["ratio"]
        last = len(m["engine"]) - 1
        shown = sorted({1, last // 2, last})
        cells = []
        for e in shown:
            parts = ", ".join(f"{d[e]:.1e}" for d in m["drifts"].values())
            cells.append(f"e{e}: {m['engine'][e]:.1e} / {m['chaos'][e]:.1e} ({parts})")
        print(f"{architecture} {optimiser} {init} seed {seed} | " + " | ".join(cells)
              + f" | {m['ratio']:.2f}")  # fmt: skip
    within = [r for r in ratios.values() if r <= CHAOS_FACTOR]
    print(
        f"{len(within)} of {len(ratios)} runs within the bound; largest ratio among them "
        f"{max(within, default=0):.2f} (bound {CHAOS_FACTOR}); {time.perf_counter() - started:.0f} s"
    )
    for name, ratio in ratios.items():
        if ratio > CHAOS_FACTOR:
            print(f"above the bound: {name}: {ratio:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
