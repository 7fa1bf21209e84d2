"""Reconstruction R^2, as modelzoo defines it and as the 2021 paper's code computed it.

modelzoo's R^2 (the usual definition, scikit-learn's ``r2_score(..., multioutput=
"variance_weighted")``): over a split's clean (unaugmented) states, in the zoo's raw weight space,

    R^2 = 1 - sum (w_hat - w)^2 / sum (w - mean_split(w))^2,

sums over states and parameters, the mean taken per parameter over the same split; per layer, the
sums run over that layer's parameters only.

The 2021 paper's code (``def_simclr_ae_module.py`` of HSG-AIML/NeurIPS_2021-Weight_Space_Learning)
computes ``1 - loss_recon / loss_mean``: both MSEs over *permuted* test views (its test set draws
each view from 10 fixed permutations) and ``loss_mean`` against the per-position mean of those
views. Permuting hidden units mixes the units' different mean weights into every position, which
inflates the denominator; ``Trainer.r2`` (hyperrep/train.py) reproduces that computation as the
log's ``paper_r2_*`` columns (see docs/hyperrep.md).
"""

from __future__ import annotations

import numpy as np


class R2:
    """Streaming per-parameter sums for R^2 (float64), overall and per layer."""

    def __init__(self, layer_of: np.ndarray, layer_names: list[str]) -> None:
        self.layer_of, self.names = layer_of, layer_names
        p = layer_of.size
        self.count = 0
        self.total, self.squares, self.errors = np.zeros(p), np.zeros(p), np.zeros(p)

    def add(self, target: np.ndarray, output: np.ndarray) -> None:
        target, output = target.astype(np.float64), output.astype(np.float64)
        self.count += target.shape[0]
        self.total += target.sum(axis=0)
        self.squares += np.square(target).sum(axis=0)
        self.errors += np.square(output - target).sum(axis=0)

    def _ratio(self, select: np.ndarray | slice) -> float:
        if self.count == 0:
            return float("nan")
        spread = self.squares[select] - np.square(self.total[select]) / self.count
        denominator = float(spread.sum())
        return (
            1.0 - float(self.errors[select].sum()) / denominator
            if denominator > 0
            else float("nan")
        )

    def overall(self) -> float:
        return self._ratio(slice(None))

    def per_layer(self) -> dict[str, float]:
        return {
            name: self._ratio(self.layer_of == number) for number, name in enumerate(self.names)
        }
