"""The statistics the papers publish about their zoos, computed for a zoo of ours.

* probe R^2 of ``W`` and ``sW`` for epoch, test accuracy, generalisation gap, per-class F1 and the
  generating factors that vary (seed 001 Tables 4, 5, 13): ``modelzoo probe``'s feature sets and
  linear probes on the zoo's one model-level split, nothing re-implemented here;
* VAR and VARc (seed 001 Table 4): the variance of the weights over the zoo's model states, and
  the mean of that variance within groups of models sharing init and activation;
* test accuracy per stored epoch (count, mean, std, min, quartiles, max), the figures the other
  papers publish (seed 003 Table 1, seed 004 Table 2, seed 001 Appendix D);
* the linear compressibility of the weights: PCA fitted on the train split's states, test-split
  reconstruction R^2 with k components (what any autoencoder of latent size k has to beat).

VAR is read as the mean over parameters of the per-parameter variance across states (the trace of
the weights' covariance divided by the parameter count): the paper does not define it further.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PROBE_TARGETS = ("epoch", "test_acc", "gap", "f1")  # f1: every per-class F1
FACTOR_TARGETS = ("init", "activation", "optimizer", "lr", "weight_decay", "dropout", "momentum",
                  "batch_size")  # fmt: skip
GROUP_FACTORS = ("init", "activation")  # VARc's groups (seed 001 Table 4)
PCA_COMPONENTS = (10, 25, 50, 80)


def weight_variance(weights: np.ndarray) -> float:
    """Mean over parameters of the variance across states (population variance, ddof 0)."""
    return float(np.asarray(weights, dtype=np.float64).var(axis=0).mean())


def grouped_variance(weights: np.ndarray, groups: pd.DataFrame) -> float:
    """VARc: the unweighted mean of ``weight_variance`` over groups of equal ``groups`` rows."""
    if groups.shape[1] == 0:
        return weight_variance(weights)
    keys = groups.astype(str).agg("|".join, axis=1).to_numpy()
    return float(np.mean([weight_variance(weights[keys == key]) for key in np.unique(keys)]))


def accuracy_by_epoch(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per stored epoch: count, mean, std (ddof 0), min, 25/50/75 % quantiles, max of test_acc."""
    finite = metrics[np.isfinite(metrics["test_acc"].to_numpy(dtype=float))]
    grouped = finite.groupby("epoch")["test_acc"]
    table = pd.DataFrame({
        "models": grouped.size(),
        "mean": grouped.mean(),
        "std": grouped.std(ddof=0),
        "min": grouped.min(),
        "q25": grouped.quantile(0.25),
        "median": grouped.median(),
        "q75": grouped.quantile(0.75),
        "max": grouped.max(),
    })  # fmt: skip
    return table.reset_index()


def pca_reconstruction(train: np.ndarray, test: np.ndarray,
                       components: Sequence[int] = PCA_COMPONENTS) -> dict[int, float]:  # fmt: skip
    """Test-split reconstruction R^2 (1 - SSE / total sum of squares about the test mean) of PCA
    fitted on the train states, per number of components below the parameter count."""
    from sklearn.decomposition import PCA

    out = {}
    train, test = np.asarray(train, dtype=np.float64), np.asarray(test, dtype=np.float64)
    total = ((test - test.mean(axis=0)) ** 2).sum()
    for k in components:
        if k >= min(train.shape) or total == 0:
            continue
        pca = PCA(k, random_state=0).fit(train)
        rebuilt = pca.inverse_transform(pca.transform(test))
        out[k] = float(1.0 - ((rebuilt - test) ** 2).sum() / total)
    return out
