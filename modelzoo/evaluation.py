"""What a zoo's stored metrics mean, computed in one place for many models at once.

Both training engines record metrics with :func:`score_split`, and ``Zoo.evaluate`` re-measures a
stored model with :func:`evaluate_model`, so a number in metrics.parquet has one definition.
Definitions: losses are the mean cross-entropy over
a split, accuracies the fraction of correct argmax predictions, ``gap`` is train accuracy minus test
accuracy, ``f1`` the per-class F1 score on the test split (0 where a class is never predicted nor
present). Train metrics are measured on the whole train split in eval mode after each epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .data import TrainingData

SCALAR_METRICS = (
    "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "gap", "seconds",
)  # fmt: skip
EVAL_CHUNK = 1024


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log_softmax over the last dimension, written out: with the handful of classes of zoo
    models, torch's CPU kernel is ~3x slower than these four element-wise operations (it
    vectorises along the class dimension). Same value to float32 rounding."""
    shifted = logits - logits.amax(dim=-1, keepdim=True)
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


@dataclass
class SplitScores:
    loss: torch.Tensor  # [M] float64
    acc: torch.Tensor  # [M] float64
    f1: torch.Tensor  # [M, K] float64


def score_split(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    chunk: int = EVAL_CHUNK,
) -> SplitScores:
    """Loss, accuracy and per-class F1 of M models; ``logits_fn(x[n]) -> logits[M, n, K]``."""
    loss_sum = correct = confusion = None
    for start in range(0, images.shape[0], chunk):
        x, y = images[start : start + chunk], labels[start : start + chunk]
        logits = logits_fn(x)  # [M, n, K]
        m, n, k = logits.shape
        # per-example losses in the logits' precision, sums in float64 (order-independent enough)
        log_probs = log_softmax(logits)
        per_example = -log_probs.gather(2, y.view(1, n, 1).expand(m, n, 1)).squeeze(2).double()
        predicted = logits.argmax(dim=2)  # [M, n]
        index = (torch.arange(m, device=y.device).unsqueeze(1) * k + y.unsqueeze(0)) * k + predicted
        counts = torch.bincount(index.reshape(-1), minlength=m * k * k).reshape(m, k, k)
        loss_sum = per_example.sum(1) if loss_sum is None else loss_sum + per_example.sum(1)
        hits = (predicted == y.unsqueeze(0)).sum(1)
        correct = hits if correct is None else correct + hits
        confusion = counts if confusion is None else confusion + counts
    total = images.shape[0]
    true_positive = confusion.diagonal(dim1=1, dim2=2).double()
    predicted_count = confusion.sum(1).double()  # column sums: predicted as class
    actual_count = confusion.sum(2).double()
    denominator = predicted_count + actual_count
    f1 = torch.where(denominator > 0, 2 * true_positive / denominator.clamp(min=1), 0.0)
    return SplitScores(loss_sum / total, correct.double() / total, f1)


def evaluate_model(model: torch.nn.Module, data: TrainingData) -> dict[str, float | np.ndarray]:
    """Every stored metric of one model (eval mode, its own device), as the engines record it."""
    was_training = model.training
    model.eval()
    k = len(data.train.classes)
    device = next(model.parameters()).device

    def logits(x: torch.Tensor) -> torch.Tensor:
        return model(x).unsqueeze(0)

    def score(split):
        if split is None:
            return None
        return score_split(logits, split.images.to(device), split.labels.to(device), k)

    with torch.no_grad():
        train, val, test = score(data.train), score(data.validation), score(data.test)
    model.train(was_training)
    nan = float("nan")
    return {
        "train_loss": float(train.loss[0]), "train_acc": float(train.acc[0]),
        "val_loss": float(val.loss[0]) if val else nan, "val_acc": float(val.acc[0]) if val else nan,
        "test_loss": float(test.loss[0]), "test_acc": float(test.acc[0]),
        "gap": float(train.acc[0] - test.acc[0]), "f1": test.f1[0].float().cpu().numpy(),
    }  # fmt: skip
