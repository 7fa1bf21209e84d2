"""Feature sets: what a probe sees of a model state. A registry, so a new feature set is one function.

Each entry is a function ``(context) -> transform``: it may fit on ``context.train`` (the train split's
flat weight vectors, never validation or test) and returns a ``transform(flat [N, P]) -> [N, F]``
that is then applied to every split, and to out-of-distribution zoos, unchanged. Sources:

* ``W``: the flat weights themselves (seed 001's baseline).
* ``sW``: per conv/linear layer (weight and bias together) mean, variance and the 0/25/50/75/100 %
  quantiles (seed 001, Table 5; Unterthiner et al. 2020, "Predicting neural network accuracy from
  weights").
* ``pca_linear``, ``pca_cosine``, ``pca_rbf``: PCA and kernel PCA of W (seed 001's PCAl/PCAc/PCAr).
* ``umap``: UMAP of W (seed 001's Um; McInnes et al. 2018).
* ``embedding``: a train-ae encoder's embeddings (``embedding:RUN_DIR``; seed 001's hyper-representations).

Kernel PCA and UMAP cannot hold every train state in memory at tetris size (a 53,000^2 kernel), so
they are fitted on ``context.fit_samples`` train states drawn with ``context.seed`` and then
transform all states.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelZooError
from ..tokens import WeightStructure

Transform = Callable[[np.ndarray], np.ndarray]
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class FeatureContext:
    """What a feature set may use: the train states, the layer structure and its settings."""

    train: np.ndarray  # [N_train, P] float32 flat weights of the train split
    structure: WeightStructure
    components: int = 16  # output dimension of PCA / kernel PCA / UMAP
    fit_samples: int = 2000  # train states kernel PCA and UMAP are fitted on
    seed: int = 0
    run_dir: Path | None = None  # for "embedding:RUN_DIR"
    encoder: Any = None  # the run folder's HyperRepresentation when the caller has loaded it

    def subsample(self) -> np.ndarray:
        """At most ``fit_samples`` train states, drawn with ``seed`` (kernel methods, UMAP)."""
        n = len(self.train)
        if n <= self.fit_samples:
            return self.train
        rows = np.random.default_rng(self.seed).choice(n, self.fit_samples, replace=False)
        return self.train[np.sort(rows)]

    def dimension(self) -> int:
        """``components``, capped by what the train data can support."""
        return max(1, min(self.components, self.train.shape[1], len(self.train) - 1))


FEATURES: dict[str, Callable[[FeatureContext], Transform]] = {}
DESCRIPTIONS: dict[str, str] = {}


def feature_set(name: str, description: str):
    """Register ``function(context) -> transform`` as feature set ``name``."""

    def register(function: Callable[[FeatureContext], Transform]):
        FEATURES[name] = function
        DESCRIPTIONS[name] = description
        return function

    return register


def check_feature_names(names: list[str]) -> list[str]:
    """The names, checked against the registry (``embedding:RUN_DIR`` needs its folder)."""
    for name in names:
        base, _, arg = name.partition(":")
        if base not in FEATURES or (base == "embedding") != bool(arg):
            valid = ", ".join(n for n in FEATURES if n != "embedding")
            raise ModelZooError(
                f"features: unknown feature set {name!r}; valid: {valid}, embedding:RUN_DIR "
                f"(or pass --embeddings RUN_DIR)"
            )
    return names


def build_transform(name: str, context: FeatureContext) -> Transform:
    """Fit feature set ``name`` (``embedding:RUN_DIR`` included) on the context's train states."""
    base, _, arg = name.partition(":")
    check_feature_names([name])
    if base == "embedding":
        context = FeatureContext(**{**context.__dict__, "run_dir": Path(arg)})
    return FEATURES[base](context)


def layer_statistics(flat: np.ndarray, structure: WeightStructure) -> np.ndarray:
    """s(W): per layer (weights and bias) mean, variance, quantiles 0/25/50/75/100 % -> [N, 7*layers]."""
    columns = []
    for layer in structure.layers:
        parts = [flat[:, layer.weight_offset : layer.weight_offset + layer.units * layer.fan_in]]
        if layer.bias_offset is not None:
            parts.append(flat[:, layer.bias_offset : layer.bias_offset + layer.units])
        values = np.concatenate(parts, axis=1).astype(np.float64)
        columns += [values.mean(1), values.var(1)]
        columns += list(np.quantile(values, QUANTILES, axis=1))
    return np.stack(columns, axis=1)


@feature_set("W", "the flat weight vector (seed 001 baseline W)")
def raw_weights(context: FeatureContext) -> Transform:
    return lambda flat: np.asarray(flat, dtype=np.float64)


@feature_set("sW", "layer-wise mean, variance, quantiles 0/25/50/75/100 % (seed 001 s(W))")
def statistics(context: FeatureContext) -> Transform:
    structure = context.structure
    return lambda flat: layer_statistics(flat, structure)


@feature_set("pca_linear", "PCA of W, `components` dimensions (seed 001 PCAl)")
def pca_linear(context: FeatureContext) -> Transform:
    from sklearn.decomposition import PCA

    pca = PCA(context.dimension(), random_state=context.seed).fit(context.train)
    return pca.transform


def _kernel_pca(context: FeatureContext, kernel: str) -> Transform:
    from sklearn.decomposition import KernelPCA

    sample = context.subsample()
    kpca = KernelPCA(min(context.dimension(), len(sample) - 1), kernel=kernel,
                     random_state=context.seed).fit(sample)  # fmt: skip

    def transform(flat: np.ndarray) -> np.ndarray:
        return np.concatenate([kpca.transform(flat[i : i + 8192]) for i in range(0, len(flat), 8192)]
                              or [np.zeros((0, kpca.eigenvalues_.size))])  # fmt: skip

    return transform


@feature_set("pca_cosine", "kernel PCA of W, cosine kernel (seed 001 PCAc)")
def pca_cosine(context: FeatureContext) -> Transform:
    return _kernel_pca(context, "cosine")


@feature_set("pca_rbf", "kernel PCA of W, RBF kernel, gamma 1/P (seed 001 PCAr)")
def pca_rbf(context: FeatureContext) -> Transform:
    return _kernel_pca(context, "rbf")


@feature_set("umap", "UMAP of W, `components` dimensions (umap-learn; seed 001 Um)")
def umap_features(context: FeatureContext) -> Transform:
    import umap

    sample = context.subsample()  # approximate neighbours: the exact small-data path is too slow
    reducer = umap.UMAP(n_components=min(context.dimension(), len(sample) - 2),
                        random_state=context.seed, n_jobs=1,
                        force_approximation_algorithm=True).fit(sample)  # fmt: skip
    return lambda flat: np.asarray(reducer.transform(flat), dtype=np.float64)


@feature_set(
    "embedding", "embeddings of a train-ae run folder (embedding:RUN_DIR; seed 001 EcD ...)"
)
def embedding(context: FeatureContext) -> Transform:
    from ..hyperrep import load_autoencoder

    encoder = context.encoder
    if encoder is None:
        if context.run_dir is None or not Path(context.run_dir).is_dir():
            raise ModelZooError(f"embedding: {context.run_dir}: not a train-ae run folder")
        encoder = load_autoencoder(context.run_dir)
    if encoder.parameters != context.train.shape[1]:
        raise ModelZooError(
            f"embedding: {context.run_dir} encodes {encoder.parameters} parameters, "
            f"the zoo has {context.train.shape[1]}"
        )
    return lambda flat: np.asarray(encoder.encode(np.asarray(flat, np.float32)), np.float64)
