"""The vectorised engine on CUDA against the CPU reference trainer (run on a GPU machine).

Trains a mixed group (Adam and SGD, several learning rates, dropout on and off) of tetris MLPs,
CNN-small (28x28) and CNN-medium (32x32) on random data with the engine on ``--device`` and each
run alone with the reference trainer on the CPU, and prints the largest weight difference and the
test-accuracy difference. Across devices results agree within float tolerance, not bit for bit
(different kernels); expect differences around 1e-6..1e-5 after a few epochs. Needs neither Ray nor
pytest, so it runs on a bare GPU box: ``PYTHONPATH=. python benchmarks/cuda_equivalence.py``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from modelzoo.data import ImageData, TrainingData
from modelzoo.spec import Run
from modelzoo.train.reference import train_reference
from modelzoo.train.vectorized import train_vectorized

SHAPES = {
    "tetris_mlp": ((1, 4, 4), 4),
    "cnn_small": ((1, 28, 28), 10),
    "cnn_medium": ((3, 32, 32), 10),
}


def random_data(architecture: str, train: int = 200, test: int = 100) -> TrainingData:
    shape, classes = SHAPES[architecture]
    generator = torch.Generator().manual_seed(0)

    def split(n: int) -> ImageData:
        return ImageData(torch.randn(n, *shape, generator=generator),
                         torch.randint(0, classes, (n,), generator=generator),
                         tuple(str(i) for i in range(classes)))  # fmt: skip

    return TrainingData(split(train), None, split(test))


def runs_for(architecture: str, optimizer: str, dropout: float, epochs: int) -> list[Run]:
    runs = []
    for index, lr in enumerate((1e-3, 3e-4, 1e-2)):
        training = {"epochs": epochs, "batch_size": 10, "optimizer": optimizer, "lr": lr,
                    "weight_decay": 1e-4, "momentum": 0.9 if optimizer == "sgd" else 0.0,
                    "dropout": dropout, "activation": "tanh", "init": "kaiming_uniform",
                    "loss": "cross_entropy"}  # fmt: skip
        runs.append(Run(model_id=index, seed=10 + index, dataset={"name": "random"},
                        architecture={"name": architecture}, training=training,
                        stored_epochs=tuple(range(epochs + 1))))  # fmt: skip
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=3)
    options = parser.parse_args()
    worst = 0.0
    for architecture in SHAPES:
        data = random_data(architecture)
        for optimizer in ("adam", "sgd"):
            for dropout in (0.0, 0.3):
                runs = runs_for(architecture, optimizer, dropout, options.epochs)
                engine = train_vectorized(runs, data, options.device)
                for run, result in zip(runs, engine):
                    reference = train_reference(run, data, "cpu")
                    diff = float(np.nanmax(np.abs(result.weights - reference.weights)))
                    acc = float(
                        np.nanmax(
                            np.abs(result.metrics["test_acc"] - reference.metrics["test_acc"])
                        )
                    )
                    worst = max(worst, diff)
                    print(f"{architecture:11s} {optimizer:4s} dropout {dropout:.1f} lr {run.training['lr']:.0e}: "
                          f"max |dw| {diff:.2e}, max |d test_acc| {acc:.3f}")  # fmt: skip
    print(f"worst weight difference {worst:.2e} on {options.device}")


if __name__ == "__main__":
    main()
