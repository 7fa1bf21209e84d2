"""The per-model reference trainer: a plain nn.Module and torch.optim, one model at a time.

It is the oracle the vectorised engine is tested against, the engine for architectures that are not
layer tables (ResNet-18), and ``--engine reference``. The loop reads top to bottom: initialise from
the run's seed, record epoch 0, then for each epoch visit the training set in the run's own order,
step the optimiser, and record weights and metrics at the stored epochs. A non-finite loss or weight
freezes the model and marks it diverged; later stored epochs hold NaN.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.nn import functional

from ..data import TrainingData
from ..nets import SeededDropout, build_model, flatten_parameters
from ..seeding import derive_seed, dropout_keys, epoch_order
from ..spec import Run
from .init import initialize
from .metrics import SCALAR_METRICS, STATUS_DIVERGED, STATUS_OK, RunResult, score_split
from .optim import make_optimizer


def build_initialised_model(run: Run, data: TrainingData) -> torch.nn.Module:
    """The run's network with its seeded initial weights (epoch 0 of the zoo)."""
    model = build_model(
        run.architecture["name"],
        tuple(data.train.images.shape[1:]),
        len(data.train.classes),
        activation=run.training["activation"],
        dropout=run.training["dropout"],
    )
    return initialize(model, run.training["init"], run.seed)


def evaluate_model(model: torch.nn.Module, data: TrainingData) -> dict[str, float | np.ndarray]:
    """Metrics of one model in eval mode (the definitions of modelzoo.train.metrics)."""
    was_training = model.training
    model.eval()
    k = len(data.train.classes)
    with torch.no_grad():

        def logits(x: torch.Tensor) -> torch.Tensor:
            return model(x).unsqueeze(0)

        train = score_split(logits, data.train.images, data.train.labels, k)
        test = score_split(logits, data.test.images, data.test.labels, k)
        val = (score_split(logits, data.validation.images, data.validation.labels, k)
               if data.validation is not None else None)  # fmt: skip
    model.train(was_training)
    return {
        "train_loss": float(train.loss[0]), "train_acc": float(train.acc[0]),
        "val_loss": float(val.loss[0]) if val else float("nan"),
        "val_acc": float(val.acc[0]) if val else float("nan"),
        "test_loss": float(test.loss[0]), "test_acc": float(test.acc[0]),
        "gap": float(train.acc[0] - test.acc[0]), "f1": test.f1[0].float().cpu().numpy(),
    }  # fmt: skip


def train_reference(run: Run, data: TrainingData, device: torch.device | str = "cpu") -> RunResult:
    device = torch.device(device)
    data_on = _to_device(data, device)
    model = build_initialised_model(run, data).to(device)
    optimizer = make_optimizer(model.parameters(), run.training)
    dropouts = [m for m in model.modules() if isinstance(m, SeededDropout)]
    key = dropout_keys(torch.tensor([derive_seed(run.seed, "dropout")])).to(device)
    for module in dropouts:
        module.key = key

    stored = run.stored_epochs
    n_params = sum(p.numel() for p in model.parameters())
    k = len(data.train.classes)
    weights = np.full((len(stored), n_params), np.nan, dtype=np.float32)
    metrics = {name: np.full(len(stored), np.nan) for name in SCALAR_METRICS}
    f1 = np.full((len(stored), k), np.nan, dtype=np.float32)
    status, error, diverged_epoch = STATUS_OK, "", -1

    def record(epoch: int, seconds: float) -> None:
        if epoch not in stored:
            return
        row = stored.index(epoch)
        weights[row] = flatten_parameters(model).cpu().numpy()
        scores = evaluate_model(model, data_on)
        f1[row] = scores.pop("f1")
        for name, value in scores.items():
            metrics[name][row] = value
        metrics["seconds"][row] = seconds

    record(0, 0.0)
    n, batch_size, step = data.train.images.shape[0], run.training["batch_size"], 0
    images, labels = data_on.train.images, data_on.train.labels
    for epoch in range(1, run.training["epochs"] + 1):
        started = time.perf_counter()
        model.train()
        order = epoch_order(run.seed, epoch, n).to(device)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            for module in dropouts:
                module.step = step
            loss = functional.cross_entropy(model(images[index]), labels[index])
            if not torch.isfinite(loss):
                status, error = STATUS_DIVERGED, f"non-finite loss in epoch {epoch} (step {step})"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        if status == STATUS_OK and not all(torch.isfinite(p).all() for p in model.parameters()):
            status, error = STATUS_DIVERGED, f"non-finite weights after epoch {epoch}"
        if status != STATUS_OK:
            diverged_epoch = epoch
            break
        record(epoch, time.perf_counter() - started)
    return RunResult(
        model_id=run.model_id, run_key=run.key, weights=weights, metrics=metrics, f1=f1,
        status=status, error=error, diverged_epoch=diverged_epoch,
    )  # fmt: skip


def _to_device(data: TrainingData, device: torch.device) -> TrainingData:
    if device.type == "cpu":
        return data
    from dataclasses import replace

    def move(split):
        return (
            None
            if split is None
            else replace(split, images=split.images.to(device), labels=split.labels.to(device))
        )

    return TrainingData(
        train=move(data.train), validation=move(data.validation), test=move(data.test)
    )
