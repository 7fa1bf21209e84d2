"""Samplers: new embeddings drawn around a train-ae run's anchors (its train-split embeddings).

Every sampler is one decorated function ``fn(anchors [A, L], accuracy [A], n, seed, **options)
-> [n, L]`` in a registry (``list_samplers``, ``get_sampler``), so a new method is one small
function and an unknown name gets an error listing the valid ones. All randomness comes from
``seed``. The methods and their papers (docs/sample.md):

- ``uniform`` (S_U, seed 003): uniform in the anchors' per-dimension range (the tanh box).
- ``kde`` / ``kde30`` (S_KDE, seed 003): a Gaussian KDE per latent dimension over all anchors /
  the anchors of the best 30% models by test accuracy; each dimension is drawn independently.
- ``counterfactual`` (S_C, seed 003): candidates uniform in the box, keeping the n of lowest
  density under that per-dimension KDE.
- ``neigh`` / ``neigh30`` (S_Neigh, seed 003): a 3-D UMAP of the anchors, uniform in its
  bounding box, mapped back with UMAP's inverse transform.
- ``gan`` / ``gan30`` (S_GAN, seed 003 Appendix E.2): a latent GAN trained on the anchors.
- ``pca-kde`` (seed 004): PCA of the anchors, per-component KDE in PCA space, mapped back.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelZooError

Sampler = Callable[..., np.ndarray]


@dataclass(frozen=True)
class SamplerInfo:
    name: str
    fn: Sampler
    paper: str
    top: float | None  # fraction of anchors kept by accuracy (kde30, neigh30, gan30), else None
    options: dict[str, Any] = field(default_factory=dict)  # option -> default
    needs: Callable[[dict[str, Any]], int] | None = None  # options -> fewest anchors it can use

    def min_anchors(self, options: dict[str, Any]) -> int:
        return 2 if self.needs is None else max(2, self.needs({**self.options, **options}))


SAMPLERS: dict[str, SamplerInfo] = {}


def _integer(low: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        return None if ok else f"an integer >= {low}"

    return check


def _bandwidth(value: Any) -> str | None:
    if value in ("scott", "silverman"):
        return None
    ok = _is_number(value) and value > 0
    return None if ok else "'scott', 'silverman' or a number > 0 (scipy's bw_method)"


def _components(value: Any) -> str | None:
    ok = _is_number(value) and (0 < value < 1 or (value >= 1 and float(value).is_integer()))
    return None if ok else "an integer >= 1 (components) or a fraction in (0, 1) (variance kept)"


def _bound(value: Any) -> str | None:
    return None if value is None or _is_number(value) else "a number, or null for the anchors' range"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


# what each option must be (checked before anything is loaded or drawn)
OPTION_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "bandwidth": _bandwidth, "candidates": _integer(1), "components": _components,
    "neighbors": _integer(2), "dims": _integer(1), "steps": _integer(1), "batch": _integer(1),
    "noise": _integer(1), "low": _bound, "high": _bound,
}  # fmt: skip


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for sampler ``name`` with its defaults filled in, or one clear error."""
    info = get_sampler(name)
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise ModelZooError(f"sampler {name}: unknown option {unknown[0]!r}; valid: "
                            f"{', '.join(info.options) or 'none'}")  # fmt: skip
    merged = {**info.options, **options}
    for key, value in options.items():
        expected = OPTION_CHECKS[key](value)
        if expected:
            raise ModelZooError(f"sampler {name}: option {key}={value!r}: expected {expected}")
    low, high = merged.get("low"), merged.get("high")
    if low is not None and high is not None and not low < high:
        raise ModelZooError(f"sampler {name}: options low={low!r}, high={high!r}: expected low < high")
    return merged


def kept_count(fraction: float | None, count: int) -> int:
    """How many of ``count`` anchors a sampler keeps: all, or its best ``fraction`` (at least 2)."""
    if fraction is None:
        return count
    return min(count, max(2, int(np.ceil(fraction * count))))


def check_anchor_count(name: str, count: int, options: dict[str, Any]) -> None:
    """One clear error when ``count`` anchors are too few for sampler ``name``."""
    info = get_sampler(name)
    used, need = kept_count(info.top, count), info.min_anchors(options)
    if used < need:
        kept = f" (its best {info.top:.0%} of {count})" if info.top is not None else ""
        raise ModelZooError(f"sampler {name}: needs at least {need} anchors, got {used}{kept}; "
                            "widen --anchor-epochs or lower --min-accuracy")  # fmt: skip


def register_sampler(name: str, paper: str, top: float | None = None,
                     needs: Callable[[dict[str, Any]], int] | None = None, **options: Any):  # fmt: skip
    """Decorator: add ``fn`` to the registry under ``name`` with its option defaults (``needs``:
    the fewest anchors it works with, given its options; default 2)."""

    def add(fn: Sampler) -> Sampler:
        SAMPLERS[name] = SamplerInfo(name, fn, paper, top, options, needs)
        return fn

    return add


def list_samplers() -> list[str]:
    return list(SAMPLERS)


def get_sampler(name: str) -> SamplerInfo:
    if name not in SAMPLERS:
        raise ModelZooError(f"--method: unknown sampler {name!r}; choose one of: "
                            f"{', '.join(SAMPLERS)}")  # fmt: skip
    return SAMPLERS[name]


def draw(name: str, anchors: np.ndarray, accuracy: np.ndarray, n: int, seed: int,
         **options: Any) -> np.ndarray:  # fmt: skip
    """``n`` embeddings from sampler ``name`` (float32 ``[n, L]``); options unknown to it are
    refused, missing ones take the registry's defaults."""
    info = get_sampler(name)
    merged = check_options(name, options)
    anchors = np.asarray(anchors, dtype=np.float64)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    if anchors.ndim != 2 or len(anchors) != len(accuracy):
        raise ModelZooError(f"sampler {name}: anchors must be [A, L] with one accuracy each")
    check_anchor_count(name, len(anchors), options)
    if info.top is not None:
        anchors = top_fraction(anchors, accuracy, info.top)
    out = info.fn(anchors, int(n), int(seed), **merged)
    return np.asarray(out, dtype=np.float32).reshape(int(n), anchors.shape[1])


def top_fraction(anchors: np.ndarray, accuracy: np.ndarray, fraction: float) -> np.ndarray:
    """The anchors of the best ``fraction`` by accuracy (at least 2; ties broken by order)."""
    order = np.argsort(-accuracy, kind="stable")[: kept_count(fraction, len(anchors))]
    return anchors[np.sort(order)]


# --------------------------------------------------------------------------- density samplers


def _kdes(points: np.ndarray, bandwidth: Any) -> list:
    """One scipy Gaussian KDE per column (a constant column gets a tiny jitter-free width)."""
    from scipy.stats import gaussian_kde

    kdes = []
    for column in points.T:
        if np.ptp(column) == 0:
            column = column + np.linspace(-1e-6, 1e-6, len(column))
        kdes.append(gaussian_kde(column, bw_method=bandwidth))
    return kdes


def _kde_draw(points: np.ndarray, n: int, seed: int, bandwidth: Any) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kdes = _kdes(points, bandwidth)
    return np.stack([k.resample(n, seed=rng).ravel() for k in kdes], axis=1)


@register_sampler("uniform", "seed 003 S_U", low=None, high=None)
def uniform(anchors: np.ndarray, n: int, seed: int, low=None, high=None) -> np.ndarray:
    """Uniform per dimension in [low, high] (default: the anchors' per-dimension range)."""
    lo = anchors.min(0) if low is None else np.full(anchors.shape[1], float(low))
    hi = anchors.max(0) if high is None else np.full(anchors.shape[1], float(high))
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, anchors.shape[1]))


@register_sampler("kde", "seed 003 S_KDE", bandwidth="scott")
def kde(anchors: np.ndarray, n: int, seed: int, bandwidth: Any = "scott") -> np.ndarray:
    return _kde_draw(anchors, n, seed, bandwidth)


register_sampler("kde30", "seed 003 S_KDE30", top=0.3, bandwidth="scott")(kde)


@register_sampler("counterfactual", "seed 003 S_C", bandwidth="scott", candidates=20)
def counterfactual(anchors: np.ndarray, n: int, seed: int, bandwidth: Any = "scott",
                   candidates: int = 20) -> np.ndarray:  # fmt: skip
    """The ``n`` least likely of ``candidates * n`` uniform draws in the anchors' box, under
    the per-dimension KDE (sum of log densities)."""
    pool = uniform(anchors, n * int(candidates), seed)
    kdes = _kdes(anchors, bandwidth)
    log_density = sum(k.logpdf(pool[:, d]) for d, k in enumerate(kdes))
    return pool[np.sort(np.argsort(log_density, kind="stable")[:n])]


@register_sampler("pca-kde", "seed 004 PCA+KDE", components=32, bandwidth="scott")
def pca_kde(anchors: np.ndarray, n: int, seed: int, components: float = 32,
            bandwidth: Any = "scott") -> np.ndarray:  # fmt: skip
    """KDE per principal component: ``components`` (default 32, seed 004; capped by the anchors)
    or, below 1, the variance fraction kept."""
    from sklearn.decomposition import PCA

    count = components if components < 1 else min(int(components), *anchors.shape)
    pca = PCA(n_components=count, svd_solver="full", random_state=seed).fit(anchors)
    codes = pca.transform(anchors)
    return pca.inverse_transform(_kde_draw(codes, n, seed, bandwidth))


# --------------------------------------------------------------------------- UMAP neighbourhood


def _umap_needs(options: dict[str, Any]) -> int:
    """UMAP's inverse transform triangulates its ``dims``-D map: dims + 2 points at least."""
    return int(options["dims"]) + 2


@register_sampler("neigh", "seed 003 S_Neigh", needs=_umap_needs, neighbors=15, dims=3)
def neigh(anchors: np.ndarray, n: int, seed: int, neighbors: int = 15, dims: int = 3) -> np.ndarray:
    """Uniform in the bounding box of a ``dims``-D UMAP of the anchors, mapped back by UMAP's
    inverse transform (umap-learn)."""
    import umap

    reducer = umap.UMAP(n_components=int(dims), n_neighbors=min(int(neighbors), len(anchors) - 1),
                        random_state=seed, init="random", n_jobs=1)  # fmt: skip
    low = reducer.fit_transform(anchors)
    points = np.random.default_rng(seed).uniform(low.min(0), low.max(0), size=(n, low.shape[1]))
    return reducer.inverse_transform(points)


register_sampler("neigh30", "seed 003 S_Neigh30", top=0.3, needs=_umap_needs, neighbors=15,
                 dims=3)(neigh)  # fmt: skip


# --------------------------------------------------------------------------- latent GAN


def _gan_nets(latent: int, noise: int):
    import torch
    from torch import nn
    from torch.nn.utils.parametrizations import spectral_norm

    widths = [noise, 128, 256, 512]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    generator = nn.Sequential(*layers, nn.Linear(512, latent))
    widths = [latent, 1024, 512, 256]
    layers = []
    for a, b in itertools.pairwise(widths):
        layers += [spectral_norm(nn.Linear(a, b)), nn.LeakyReLU(0.2)]
    discriminator = nn.Sequential(*layers, spectral_norm(nn.Linear(256, 1)))
    return torch, generator, discriminator


@register_sampler("gan", "seed 003 S_GAN (App. E.2)", steps=2000, batch=32, noise=16)
def gan(anchors: np.ndarray, n: int, seed: int, steps: int = 2000, batch: int = 32,
        noise: int = 16) -> np.ndarray:  # fmt: skip
    """Generator 16-128-256-512-L and spectrally normalised discriminator L-1024-512-256-1,
    Adam 1e-4 (G) / 2e-4 (D), batch 32, non-saturating loss, trained ``steps`` steps."""
    import torch

    with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's RNG untouched
        torch.manual_seed(int(seed))
        _, generator, discriminator = _gan_nets(anchors.shape[1], int(noise))
    gen = torch.Generator().manual_seed(int(seed))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is faster and immune to a busy machine
    try:
        return _train_gan(torch, generator, discriminator, gen, anchors, n, steps, batch, noise)
    finally:
        torch.set_num_threads(threads)


def _train_gan(torch, generator, discriminator, gen, anchors, n, steps, batch, noise):
    data = torch.tensor(np.array(anchors, dtype=np.float32))
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    softplus = torch.nn.functional.softplus
    for _ in range(int(steps)):
        real = data[torch.randint(len(data), (int(batch),), generator=gen)]
        fake = generator(torch.randn(int(batch), int(noise), generator=gen))
        loss_d = softplus(-discriminator(real)).mean() + softplus(discriminator(fake.detach())).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = softplus(-discriminator(fake)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    with torch.no_grad():
        return generator(torch.randn(n, int(noise), generator=gen)).numpy()


register_sampler("gan30", "seed 003 S_GAN30", top=0.3, steps=2000, batch=32, noise=16)(gan)
