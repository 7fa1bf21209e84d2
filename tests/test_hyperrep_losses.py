"""hyperrep losses and R^2 against direct computations (loops, scikit-learn, torch's own losses)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score

from modelzoo.hyperrep.losses import (
    behaviour_cross_entropy,
    behaviour_distillation,
    behaviour_mse,
    composite,
    layerwise_mse,
    nt_xent,
    positive_contrast,
    reconstruction_mse,
)
from modelzoo.hyperrep.metrics import R2


def _cosine(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(u @ v / (u.norm() * v.norm()))


def test_nt_xent_equals_the_papers_equation_written_as_a_loop():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, generator=gen), torch.randn(5, 7, generator=gen)
    temperature = 0.3
    z = list(torch.cat([a, b]))
    n = len(a)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)  # the other view of the same sample
        denominator = sum(math.exp(_cosine(z[i], z[k]) / temperature) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(_cosine(z[i], z[j]) / temperature) / denominator)
    assert float(nt_xent(a, b, temperature)) == pytest.approx(total / (2 * n), rel=1e-5)


def test_positive_contrast_is_minus_the_mean_cosine_over_t():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    expected = -np.mean([_cosine(a[i], b[i]) for i in range(6)]) / 0.5
    assert float(positive_contrast(a, b, 0.5)) == pytest.approx(expected, rel=1e-5)


def test_masked_mse_ignores_padding():
    gen = torch.Generator().manual_seed(2)
    out, target = torch.randn(3, 4, 5, generator=gen), torch.randn(3, 4, 5, generator=gen)
    mask = torch.rand(4, 5, generator=gen) > 0.4
    real = np.broadcast_to(mask.numpy(), out.shape)
    expected = np.mean((out.numpy()[real] - target.numpy()[real]) ** 2)
    assert float(reconstruction_mse(out, target, mask)) == pytest.approx(expected, rel=1e-5)
    garbage = out.clone()
    garbage[:, ~mask] = 1e6  # values at padded slots never count
    assert float(reconstruction_mse(garbage, target, mask)) == pytest.approx(expected, rel=1e-5)


def test_lwln_equals_plain_mse_when_every_layer_has_the_same_std():
    gen = torch.Generator().manual_seed(3)
    out, target = torch.randn(4, 6, 3, generator=gen), torch.randn(4, 6, 3, generator=gen)
    mask = torch.ones(6, 3, dtype=torch.bool)
    mean = torch.randn(6, 1, generator=gen).expand(6, 3)  # a mean per layer (token row) cancels
    plain = float(reconstruction_mse(out, target, mask))
    assert float(layerwise_mse(out, target, mask, mean=mean, std=torch.ones(6, 3))) == pytest.approx(plain, rel=1e-5)
    same = torch.full((6, 3), 2.5)
    assert float(layerwise_mse(out, target, mask, mean=mean, std=same)) == pytest.approx(plain / 2.5**2, rel=1e-5)


def test_lwln_weighs_each_layer_by_its_inverse_variance():
    out, target = torch.zeros(1, 2, 2), torch.ones(1, 2, 2)
    std = torch.tensor([[0.5, 0.5], [2.0, 2.0]])  # two layers, one token each
    expected = np.mean([1 / 0.25, 1 / 0.25, 1 / 4.0, 1 / 4.0])
    got = layerwise_mse(out, target, torch.ones(2, 2, dtype=torch.bool), mean=torch.zeros(2, 2), std=std)
    assert float(got) == pytest.approx(expected)
    tiny = layerwise_mse(out, target, torch.ones(2, 2, dtype=torch.bool), mean=torch.zeros(2, 2),
                         std=torch.zeros(2, 2))  # fmt: skip
    assert float(tiny) == pytest.approx(1 / 1e-4**2)  # the 2022 paper's floor


def test_behavioural_losses_against_torch():
    gen = torch.Generator().manual_seed(4)
    logits, reference = torch.randn(3, 8, 4, generator=gen), torch.randn(3, 8, 4, generator=gen)
    assert float(behaviour_mse(reference, reference)) == 0.0
    mse = ((logits.softmax(-1) - reference.softmax(-1)) ** 2).mean()
    assert float(behaviour_mse(logits, reference)) == pytest.approx(float(mse), rel=1e-6)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 4), reference.softmax(-1).reshape(-1, 4))
    assert float(behaviour_cross_entropy(logits, reference)) == pytest.approx(float(ce), rel=1e-5)
    t = 2.0
    kl = torch.nn.functional.kl_div((logits / t).log_softmax(-1).reshape(-1, 4),
                                    (reference / t).softmax(-1).reshape(-1, 4),
                                    reduction="batchmean") * t**2  # fmt: skip
    assert float(behaviour_distillation(logits, reference, t)) == pytest.approx(float(kl), rel=1e-5)


def test_composite_is_the_2025_equation():
    c, s, b = torch.tensor(1.0), torch.tensor(2.0), torch.tensor(4.0)
    assert float(composite(0.05, 0.1, c, s, b)) == pytest.approx(0.05 + 0.95 * (0.2 + 0.9 * 4))
    assert float(composite(0.5, 1.0, c, s, b)) == pytest.approx(0.5 * 1 + 0.5 * 2)  # 2021 EcD


def test_r2_matches_scikit_learn_overall_and_per_layer():
    rng = np.random.default_rng(5)
    target = rng.normal(size=(40, 7)) * np.array([1, 2, 3, 0.5, 1, 1, 4]) + 3.0
    output = target + rng.normal(scale=0.7, size=target.shape)
    layer_of = np.array([0, 0, 0, 1, 1, 2, 2])
    r2 = R2(layer_of, ["a", "b", "c"])
    r2.add(target[:25], output[:25])
    r2.add(target[25:], output[25:])  # streaming in chunks
    assert r2.overall() == pytest.approx(r2_score(target, output, multioutput="variance_weighted"))
    for number, name in enumerate("abc"):
        cols = layer_of == number
        expected = r2_score(target[:, cols], output[:, cols], multioutput="variance_weighted")
        assert r2.per_layer()[name] == pytest.approx(expected)
