"""What the report measures on networks given as flat weights: predictions, ensembles of k
(mean of softmax), diversity (seed 004 Table 6), reconstruction fidelity (seed 004 Table 5) and
the statistics against baselines (scipy's Mann-Whitney U, common-language effect size)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


@torch.no_grad()
def probabilities(plan: Any, activation: str, weights: np.ndarray, images: torch.Tensor,
                  chunk: int = 512) -> np.ndarray:  # fmt: skip
    """Softmax outputs ``[M, N, K]`` of M networks (flat weights ``[M, P]``) on ``images``."""
    from ..train.stacked import StackedNet

    params = torch.as_tensor(np.asarray(weights, dtype=np.float32))
    net = StackedNet(plan, activation, len(params))
    parts = [torch.softmax(net.forward(params, images[s : s + chunk], shared=True).double(), -1)
             for s in range(0, len(images), chunk)]  # fmt: skip
    return torch.cat(parts, dim=1).numpy()


def ensemble_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Accuracy of each ensemble of ``k`` consecutive networks (mean of their softmax)."""
    groups = len(probs) // k
    if groups == 0:
        return np.zeros(0)
    mean = probs[: groups * k].reshape(groups, k, *probs.shape[1:]).mean(axis=1)
    return (mean.argmax(-1) == labels[None]).mean(axis=1)


def diversity(weights: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Mean pairwise L2 distance of weights, of softmax outputs (per example), and the mean
    pairwise disagreement of predicted classes."""
    from scipy.spatial.distance import pdist

    finite = np.isfinite(weights).all(1)
    weights, probs = weights[finite], probs[finite]
    if len(weights) < 2:
        return {"weight_l2": float("nan"), "prediction_l2": float("nan"),
                "disagreement": float("nan")}  # fmt: skip
    predicted = probs.argmax(-1)
    per_example = np.mean([pdist(probs[:, i]) for i in range(probs.shape[1])], axis=0)
    return {
        "weight_l2": float(pdist(weights).mean()),
        "prediction_l2": float(per_example.mean()),
        "disagreement": float(pdist(predicted, metric="hamming").mean()),
    }


def fidelity(original: np.ndarray, rebuilt: np.ndarray, p_original: np.ndarray,
             p_rebuilt: np.ndarray) -> dict[str, float]:  # fmt: skip
    """Reconstruction fidelity: mean L2 distance of weights and mean prediction agreement."""
    return {
        "l2": float(np.linalg.norm(original.astype(np.float64) - rebuilt, axis=1).mean()),
        "agreement": float((p_original.argmax(-1) == p_rebuilt.argmax(-1)).mean()),
    }


def versus(values: np.ndarray, baseline: np.ndarray) -> dict[str, float]:
    """Two-sided Mann-Whitney U p-value and the common-language effect size P(X > Y) + P(X = Y)/2
    (= U / (n x m)) of ``values`` against ``baseline`` (NaN dropped)."""
    from scipy.stats import mannwhitneyu

    x, y = values[np.isfinite(values)], baseline[np.isfinite(baseline)]
    if len(x) == 0 or len(y) == 0 or np.ptp(np.concatenate([x, y])) == 0:
        return {"p_value": float("nan"), "cles": float("nan")}
    test = mannwhitneyu(x, y, alternative="two-sided")
    return {"p_value": float(test.pvalue), "cles": float(test.statistic / (len(x) * len(y)))}
