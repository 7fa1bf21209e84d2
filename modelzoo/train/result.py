"""The record a training task hands back for each model: plain numpy arrays, so it crosses
processes (Ray workers) and is all the store writer needs.

Large models stream their weights instead: the engines call an :data:`EpochSink` with each stored
epoch's weights as soon as it is recorded, and the result then carries no weights (only what the
tables need), so no process ever holds a whole history of an 11M-parameter model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..evaluation import SCALAR_METRICS

STATUS_OK, STATUS_DIVERGED, STATUS_FAILED = "ok", "diverged", "failed"

EpochSink = Callable[[int, int, np.ndarray], None]
"""``sink(model_id, row, weights)``: the weights ``[P]`` of a model at the ``row``-th of its stored
epochs, handed over as soon as they are recorded."""


@dataclass
class RunResult:
    """Everything one trained model contributes to the store (numpy, so it crosses processes)."""

    model_id: int
    run_key: str
    weights: np.ndarray | None  # float32 [stored epochs, parameters]; NaN after divergence;
    # None when the weights were streamed to the writer epoch by epoch, or the model failed
    metrics: dict[str, np.ndarray]  # SCALAR_METRICS -> float64 [stored epochs]
    f1: np.ndarray  # float32 [stored epochs, classes]
    status: str = STATUS_OK
    error: str = ""
    diverged_epoch: int = -1

    @classmethod
    def failed(
        cls, model_id: int, run_key: str, epochs: int, params: int, classes: int, error: str
    ):
        nan = np.full(epochs, np.nan)
        return cls(
            model_id=model_id,
            run_key=run_key,
            weights=None,  # a failed model has no weights: the shard stores NaN
            metrics={name: nan.copy() for name in SCALAR_METRICS},
            f1=np.full((epochs, classes), np.nan, dtype=np.float32),
            status=STATUS_FAILED,
            error=error,
        )
