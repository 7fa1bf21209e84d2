"""Probes (scikit-learn only) and the metrics they are scored by.

``linear`` (seed 001): ridge regression (one SVD for the whole alpha path, ``RidgePath``) with
alpha chosen on the validation split over the log grid 1e-5..1e3 for continuous targets; logistic regression, C chosen on validation accuracy, for
categorical ones. ``mlp``: scikit-learn's MLP as the non-linear reference (one hidden layer of 100;
early stopping on a seeded tenth of the train split from 50 train states on). Features are
standardised on the train split.
Metrics: R^2 and Kendall's tau (scipy) for continuous targets, accuracy for categorical ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelZooError

ALPHAS = np.logspace(-5, 3, 9)  # seed 001: Tikhonov alpha in [1e-5, 1e3], chosen on validation
CS = np.logspace(-2, 2, 3)


@dataclass
class FittedProbe:
    """A fitted scaler + estimator; ``setting`` is the hyperparameter chosen on validation."""

    scaler: Any
    estimator: Any
    setting: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.empty(0)
        return self.estimator.predict(standardise(self.scaler, features))


def standardise(scaler, x: np.ndarray) -> np.ndarray:
    """``scaler.transform`` that also takes an empty split (a tiny zoo's validation split)."""
    if len(x) == 0:
        return np.empty((0, scaler.n_features_in_))
    return scaler.transform(x)


class RidgePath:
    """Ridge regression for every alpha of ``ALPHAS`` from one thin SVD of the (standardised) train
    features: coefficients V diag(s / (s^2 + alpha)) U^T (y - mean y), intercept mean y. Stable when
    there are more features than train states (where solving the normal equations is not), and
    one decomposition serves all alphas and all targets."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.x_mean = x.mean(axis=0)
        self.y_mean = np.asarray(y, dtype=np.float64).mean(axis=0)
        u, self.s, self.vt = np.linalg.svd(x - self.x_mean, full_matrices=False)
        self.uty = u.T @ (np.asarray(y, dtype=np.float64) - self.y_mean)

    def coefficients(self, alpha: float) -> np.ndarray:
        return self.vt.T @ ((self.s / (self.s**2 + alpha))[:, None] * self.uty.reshape(len(self.s), -1))

    def fitted(self, alpha: float) -> _Linear:
        return _Linear(self.coefficients(alpha), self.y_mean - self.x_mean @ self.coefficients(alpha))


class _Linear:
    def __init__(self, coef: np.ndarray, intercept: np.ndarray) -> None:
        self.coef, self.intercept = coef, np.atleast_1d(intercept)

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = np.asarray(x, dtype=np.float64).reshape(len(x), -1) @ self.coef + self.intercept
        return out[:, 0] if out.shape[1] == 1 else out


def _ridge(x_train, y_train, x_val, y_val, seed):
    from sklearn.metrics import r2_score

    path = RidgePath(x_train, y_train)
    fits = [(path.fitted(a), a) for a in ALPHAS]
    if len(x_val) == 0:
        return fits[0]
    return max(fits, key=lambda fit: r2_score(y_val, fit[0].predict(x_val)))


def _logistic(x_train, y_train, x_val, y_val, seed):
    from sklearn.linear_model import LogisticRegression

    fits = [(LogisticRegression(C=c, max_iter=500, random_state=seed).fit(x_train, y_train), c)
            for c in CS]  # fmt: skip
    if len(x_val) == 0:
        return fits[1]
    return max(fits, key=lambda fit: fit[0].score(x_val, y_val))


def _mlp_regressor(x_train, y_train, x_val, y_val, seed):
    from sklearn.neural_network import MLPRegressor

    return MLPRegressor(hidden_layer_sizes=(100,), early_stopping=len(x_train) >= 50,
                            max_iter=200, random_state=seed).fit(
        x_train, y_train), float("nan")  # fmt: skip


def _mlp_classifier(x_train, y_train, x_val, y_val, seed):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(100,), early_stopping=len(x_train) >= 50,
                             max_iter=200, random_state=seed).fit(
        x_train, y_train), float("nan")  # fmt: skip


PROBES: dict[str, dict[str, Callable]] = {
    "linear": {"continuous": _ridge, "categorical": _logistic},
    "mlp": {"continuous": _mlp_regressor, "categorical": _mlp_classifier},
}


def fit_probe(probe: str, kind: str, x_train: np.ndarray, y_train: np.ndarray,
              x_val: np.ndarray, y_val: np.ndarray, seed: int = 0) -> FittedProbe:  # fmt: skip
    """Standardise on train, fit ``probe`` for a ``kind`` target, choose its setting on validation."""
    from sklearn.preprocessing import StandardScaler

    if probe not in PROBES:
        raise ModelZooError(f"probe: unknown probe {probe!r}; valid: {', '.join(PROBES)}")
    if len(np.unique(y_train)) < 2:
        raise ModelZooError("probe: the train split holds a single target value")
    scaler = StandardScaler().fit(x_train)
    estimator, setting = PROBES[probe][kind](scaler.transform(x_train), y_train,
                                             standardise(scaler, x_val), y_val, seed)  # fmt: skip
    return FittedProbe(scaler, estimator, float(setting))


class _Column:
    """Column ``j`` of a multi-output estimator (one ridge fit per alpha serves every target)."""

    def __init__(self, estimator, j: int) -> None:
        self.estimator, self.j = estimator, j

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.reshape(self.estimator.predict(x), (len(x), -1))[:, self.j]


def fit_ridges(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
               y_val: np.ndarray) -> list[FittedProbe]:  # fmt: skip
    """The linear probe for several continuous targets ``y [N, T]`` at once: per alpha one
    multi-output ridge fit (the same solution as T separate fits), alpha chosen per target."""
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    xt, xv = scaler.transform(x_train), standardise(scaler, x_val)
    path = RidgePath(xt, y_train)
    fits = [path.fitted(a) for a in ALPHAS]
    chosen = []
    targets = y_train.shape[1]
    predicted = [np.reshape(fit.predict(xv), (len(xv), targets)) if len(xv) else None
                 for fit in fits]  # fmt: skip
    for j in range(targets):
        scores = np.array([r2_score(y_val[:, j], p[:, j]) if len(xv) > 1 else 0.0
                           for p in predicted])  # fmt: skip
        best = int(np.nanargmax(scores)) if np.isfinite(scores).any() else 0
        chosen.append(FittedProbe(scaler, _Column(fits[best], j), float(ALPHAS[best])))
    return chosen


def kendall_tau(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Kendall's tau-b of predictions vs truth (scipy); NaN when either side is constant."""
    from scipy.stats import kendalltau

    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return float("nan")
    return float(kendalltau(y_true, y_pred).statistic)


def score(kind: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R^2 and Kendall's tau (continuous) or accuracy (categorical)."""
    from sklearn.metrics import accuracy_score, r2_score

    if len(y_true) == 0:
        return {}
    if kind == "categorical":
        return {"accuracy": float(accuracy_score(y_true, y_pred))}
    r2 = float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan")
    return {"r2": r2, "kendall_tau": kendall_tau(y_true, y_pred)}
