"""The per-model reference trainer: a plain nn.Module and torch.optim, one model at a time.

It is the oracle the vectorised engine is tested against and ``--engine reference``. The loop reads top to bottom: initialise from
the run's seed, record epoch 0, then for each epoch visit the training set in the run's own order,
step the optimiser, and record weights and metrics at the stored epochs. A non-finite loss or weight
freezes the model and marks it diverged; later stored epochs hold NaN.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional

from ..architectures import plan_architecture
from ..data import TrainingData
from ..evaluation import SCALAR_METRICS, evaluate_model
from ..init import initialize
from ..nets import SeededDropout, build_model, flatten_state, load_flat_state
from ..optim import make_optimizer, make_scheduler
from ..seeding import derive_seed, dropout_keys, epoch_order, generator
from ..spec import Run
from .images import augment_batch
from .result import STATUS_DIVERGED, STATUS_OK, EpochSink, RunResult


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


def train_reference(
    run: Run,
    data: TrainingData,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
    initial: np.ndarray | None = None,
    sink: EpochSink | None = None,
) -> RunResult:
    """Train one run; ``progress(1)`` after each epoch; ``initial`` (float32 ``[P]``) replaces
    the seeded initial weights (fine-tuning given networks); with a ``sink`` each stored epoch's
    weights go there as soon as they are recorded and the result carries none."""
    device = torch.device(device)
    data_on = _to_device(data, device)
    plan = plan_architecture(run.architecture["name"], tuple(data.train.images.shape[1:]),
                             len(data.train.classes))  # fmt: skip
    model = build_initialised_model(run, data)
    if initial is not None:
        load_flat_state(model, torch.as_tensor(np.asarray(initial, dtype=np.float32)), plan.layout)
    model = model.to(device)
    optimizer = make_optimizer(model.parameters(), run.training)
    n, batch_size = data.train.images.shape[0], run.training["batch_size"]
    scheduler = make_scheduler(optimizer, run.training, math.ceil(n / batch_size))
    dropouts = [m for m in model.modules() if isinstance(m, SeededDropout)]
    key = dropout_keys(torch.tensor([derive_seed(run.seed, "dropout")])).to(device)
    for module in dropouts:
        module.key = key

    stored = run.stored_epochs
    k = len(data.train.classes)
    weights = None if sink else np.full((len(stored), plan.parameters), np.nan, dtype=np.float32)
    metrics = {name: np.full(len(stored), np.nan) for name in SCALAR_METRICS}
    f1 = np.full((len(stored), k), np.nan, dtype=np.float32)
    status, error, diverged_epoch = STATUS_OK, "", -1

    def record(epoch: int, seconds: float) -> None:
        if epoch not in stored:
            return
        row = stored.index(epoch)
        vector = flatten_state(model, plan.layout).cpu().numpy()
        if sink is not None:
            sink(run.model_id, row, vector)
        else:
            weights[row] = vector
        scores = evaluate_model(model, data_on)
        f1[row] = scores.pop("f1")
        for name, value in scores.items():
            metrics[name][row] = value
        metrics["seconds"][row] = seconds

    record(0, 0.0)
    step, augment = 0, run.training.get("augment", "none")
    images, labels = data_on.train.images, data_on.train.labels
    for epoch in range(1, run.training["epochs"] + 1):
        started = time.perf_counter()
        model.train()
        order = epoch_order(run.seed, epoch, n).to(device)
        draws = generator(run.seed, f"augment:{epoch}")
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            for module in dropouts:
                module.step = step
            batch = augment_batch(augment, images[index], draws)
            loss = functional.cross_entropy(model(batch), labels[index])
            if not torch.isfinite(loss):
                status, error = STATUS_DIVERGED, f"non-finite loss in epoch {epoch} (step {step})"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
        if status == STATUS_OK and not all(torch.isfinite(p).all() for p in model.parameters()):
            status, error = STATUS_DIVERGED, f"non-finite weights after epoch {epoch}"
        if status != STATUS_OK:
            diverged_epoch = epoch
            break
        record(epoch, time.perf_counter() - started)
        if progress is not None:
            progress(1)
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
