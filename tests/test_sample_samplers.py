"""The samplers and the report's measures, against independent computations (scipy, numpy)."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from scipy import stats

from modelzoo.errors import ModelZooError
from modelzoo.sample import draw, list_samplers, measure

FAST = {"gan": {"steps": 10}, "gan30": {"steps": 10}, "neigh": {"neighbors": 5},
        "neigh30": {"neighbors": 5}}  # fmt: skip


@pytest.fixture(scope="module")
def anchors():
    rng = np.random.default_rng(0)
    z = np.tanh(rng.normal(0, 0.5, (40, 5)))
    return z, rng.random(40)


def test_registry_has_every_method_of_both_papers():
    assert set(list_samplers()) == {"uniform", "kde", "kde30", "counterfactual", "neigh",
                                    "neigh30", "gan", "gan30", "pca-kde"}  # fmt: skip


@pytest.mark.parametrize("name", list_samplers())
def test_every_sampler_draws_the_right_shape_deterministically(anchors, name):
    z, acc = anchors
    a = draw(name, z, acc, 7, seed=3, **FAST.get(name, {}))
    b = draw(name, z, acc, 7, seed=3, **FAST.get(name, {}))
    assert a.shape == (7, 5) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    if name not in FAST:  # the slow ones (UMAP, GAN training) are drawn twice only
        assert not np.array_equal(a, draw(name, z, acc, 7, seed=4))


def test_kde_follows_a_one_dimensional_density():
    rng = np.random.default_rng(1)
    def mixture(n):  # bimodal: N(-2, 0.5) and N(1.5, 0.7), weights 0.4 / 0.6
        pick = rng.random(n) < 0.4
        return np.where(pick, rng.normal(-2, 0.5, n), rng.normal(1.5, 0.7, n))
    anchors = mixture(3000)[:, None]
    drawn = draw("kde", anchors, np.zeros(3000), 3000, seed=0)[:, 0]
    assert stats.ks_2samp(drawn, mixture(3000)).pvalue > 0.01
    # and not just any spread: a unimodal normal with the same mean and std is rejected
    normal = rng.normal(anchors.mean(), anchors.std(), 3000)
    assert stats.ks_2samp(drawn, normal).pvalue < 1e-6


def test_kde30_stays_among_the_best_anchors():
    rng = np.random.default_rng(2)
    good, bad = rng.normal(3, 0.2, (30, 2)), rng.normal(-3, 0.2, (70, 2))
    z, acc = np.concatenate([good, bad]), np.r_[np.full(30, 0.9), np.full(70, 0.1)]
    assert (draw("kde30", z, acc, 200, seed=0) > 1).all()
    assert (draw("kde", z, acc, 200, seed=0) < -1).mean() > 0.5


def test_counterfactual_samples_are_low_density(anchors):
    z, acc = anchors
    kdes = [stats.gaussian_kde(z[:, d]) for d in range(z.shape[1])]
    def density(points):
        return sum(k.logpdf(points[:, d]) for d, k in enumerate(kdes))
    low = draw("counterfactual", z, acc, 50, seed=0)
    usual = draw("kde", z, acc, 50, seed=0)
    box = draw("uniform", z, acc, 50, seed=0)
    assert density(low).mean() < density(box).mean() < density(usual).mean()
    assert (low >= z.min(0) - 1e-6).all() and (low <= z.max(0) + 1e-6).all()


def test_uniform_stays_in_the_anchors_box(anchors):
    z, acc = anchors
    u = draw("uniform", z, acc, 500, seed=0)
    assert (u >= z.min(0) - 1e-6).all() and (u <= z.max(0) + 1e-6).all()
    assert stats.kstest((u[:, 0] - z[:, 0].min()) / np.ptp(z[:, 0]), "uniform").pvalue > 0.01


def test_unknown_names_and_options_are_one_clear_error(anchors):
    z, acc = anchors
    with pytest.raises(ModelZooError, match="unknown sampler 'kde31'; choose one of: uniform"):
        draw("kde31", z, acc, 3, seed=0)
    with pytest.raises(ModelZooError, match="unknown option 'bandwith'; valid: bandwidth"):
        draw("kde", z, acc, 3, seed=0, bandwith=0.1)


@pytest.mark.parametrize("name, options, expected", [
    ("kde", {"bandwidth": "abc"}, "option bandwidth='abc': expected 'scott', 'silverman' or a "
                                  "number > 0"),
    ("kde30", {"bandwidth": -1}, "option bandwidth=-1: expected 'scott'"),
    ("gan", {"steps": "abc"}, "option steps='abc': expected an integer >= 1"),
    ("gan30", {"steps": 0}, "option steps=0: expected an integer >= 1"),
    ("pca-kde", {"components": 0}, "option components=0: expected an integer >= 1"),
    ("pca-kde", {"components": 2.5}, "option components=2.5: expected an integer >= 1"),
    ("uniform", {"low": "x"}, "option low='x': expected a number, or null"),
    ("uniform", {"low": 1, "high": 0}, "options low=1, high=0: expected low < high"),
    ("counterfactual", {"candidates": 0}, "option candidates=0: expected an integer >= 1"),
    ("neigh", {"dims": 0}, "option dims=0: expected an integer >= 1"),
    ("neigh30", {"neighbors": True}, "option neighbors=True: expected an integer >= 2"),
])  # fmt: skip
def test_bad_option_values_are_one_clear_error(anchors, name, options, expected):
    z, acc = anchors
    with pytest.raises(ModelZooError, match=re.escape(f"sampler {name}: {expected}")):
        draw(name, z, acc, 3, seed=0, **options)


def test_umap_samplers_refuse_fewer_anchors_than_their_map_needs():
    """UMAP's inverse transform triangulates the 3-D map: 5 points at least (Qhull otherwise)."""
    rng = np.random.default_rng(5)
    z, acc = rng.normal(size=(12, 4)), rng.random(12)
    message = "sampler neigh30: needs at least 5 anchors, got 4 (its best 30% of 12)"
    with pytest.raises(ModelZooError, match=re.escape(message)):
        draw("neigh30", z, acc, 3, seed=0)
    with pytest.raises(ModelZooError, match=re.escape("needs at least 4 anchors, got 3")):
        draw("neigh", z[:3], acc[:3], 3, seed=0, dims=2)


@pytest.mark.parametrize("factor", [0.1, 1.0])
def test_the_bandwidth_option_sets_the_kernel_width(factor):
    """A Gaussian KDE with scipy's factor f draws x_i + f * s * eps (s: the anchors' std,
    ddof 1), so its draws have variance var(x) + f^2 s^2; Scott's rule (f = 500^-0.2 = 0.29)
    would give 1.08 var(x), between the two cases."""
    anchors = np.random.default_rng(6).normal(0, 1, (500, 1))
    drawn = draw("kde", anchors, np.zeros(500), 40_000, seed=0, bandwidth=factor)[:, 0]
    expected = anchors.var() + factor**2 * anchors.var(ddof=1)
    assert drawn.var() == pytest.approx(expected, rel=0.02)


def test_method_lists_drop_repeats_and_refuse_empty_ones():
    from modelzoo.sample.api import methods_of

    assert methods_of(" kde, kde30,kde ") == ["kde", "kde30"]
    assert methods_of("all") == list_samplers()
    for empty in ("", ",", " , "):
        with pytest.raises(ModelZooError, match="--method: no sampler given"):
            methods_of(empty)


def test_mann_whitney_and_common_language_effect_size_by_brute_force():
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.3, 1, 25).round(1), rng.normal(0, 1, 30).round(1)
    pairs = [(a > b) + 0.5 * (a == b) for a, b in itertools.product(x, y)]
    result = measure.versus(x, y)
    assert result["cles"] == pytest.approx(np.mean(pairs))
    assert result["p_value"] == pytest.approx(stats.mannwhitneyu(x, y).pvalue)


def test_ensembles_and_diversity_by_direct_loops():
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(3), size=(6, 20))
    labels = rng.integers(0, 3, 20)
    expected = [np.mean((probs[2 * g] + probs[2 * g + 1]).argmax(-1) == labels) for g in range(3)]
    np.testing.assert_allclose(measure.ensemble_accuracy(probs, labels, 2), expected)
    weights = rng.normal(size=(6, 9))
    d = measure.diversity(weights, probs)
    pairs = list(itertools.combinations(range(6), 2))
    assert d["weight_l2"] == pytest.approx(
        np.mean([np.sqrt(((weights[i] - weights[j]) ** 2).sum()) for i, j in pairs]))
    assert d["prediction_l2"] == pytest.approx(
        np.mean([np.linalg.norm(probs[i] - probs[j], axis=1).mean() for i, j in pairs]))
    assert d["disagreement"] == pytest.approx(
        np.mean([(probs[i].argmax(-1) != probs[j].argmax(-1)).mean() for i, j in pairs]))


def test_the_latent_gan_has_the_papers_layers():
    """Seed 003 Appendix E.2: generator 16-128-256-512-L, discriminator L-1024-512-256-1 with
    spectral normalisation on every linear layer of the discriminator."""
    from torch import nn

    from modelzoo.sample.samplers import _gan_nets

    _, generator, discriminator = _gan_nets(latent=50, noise=16)
    shapes = [(m.in_features, m.out_features) for m in generator if isinstance(m, nn.Linear)]
    assert shapes == [(16, 128), (128, 256), (256, 512), (512, 50)]
    linear = [m for m in discriminator if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(50, 1024), (1024, 512),
                                                                   (512, 256), (256, 1)]  # fmt: skip
    assert all(hasattr(m, "parametrizations") and "weight" in m.parametrizations for m in linear)
