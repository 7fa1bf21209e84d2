"""The record a training task hands back for each model: plain numpy arrays, so it crosses
processes (Ray workers) and is all the store writer needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..evaluation import SCALAR_METRICS

STATUS_OK, STATUS_DIVERGED, STATUS_FAILED = "ok", "diverged", "failed"


@dataclass
class RunResult:
    """Everything one trained model contributes to the store (numpy, so it crosses processes)."""

    model_id: int
    run_key: str
    weights: np.ndarray  # float32 [stored epochs, parameters]; NaN after divergence
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
            weights=np.full((epochs, params), np.nan, dtype=np.float32),
            metrics={name: nan.copy() for name in SCALAR_METRICS},
            f1=np.full((epochs, classes), np.nan, dtype=np.float32),
            status=STATUS_FAILED,
            error=error,
        )
