"""Initialisation schemes: the plain names draw what the authors' generators draw (torch's
initialisers with their defaults, biases 0.01), spelled-out forms draw exactly what they say, the
old `uniform` survives as `uniform(-0.5, 0.5, bias=same)` bit for bit, and every zoo's manifest
records the exact distributions. Distributions are checked with scipy's KS test, formulas by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from modelzoo.errors import ModelZooError, SpecError
from modelzoo.init import initialize, parse_init
from modelzoo.nets import build_model
from modelzoo.seeding import generator
from modelzoo.spec import load_spec

INPUT = (1, 8, 8)  # digits


def _model(init: str, seed: int = 3, architecture: str = "cnn_tiny") -> torch.nn.Module:
    torch.manual_seed(0)  # construction draws nothing we keep: initialize overwrites every tensor
    model = build_model(architecture, INPUT, 10, "tanh", 0.0)
    return initialize(model, init, seed)


def _split(model):
    weights = np.concatenate([p.detach().numpy().ravel() for n, p in model.named_parameters()
                              if n.endswith("weight")])  # fmt: skip
    biases = np.concatenate([p.detach().numpy().ravel() for n, p in model.named_parameters()
                             if n.endswith("bias")])  # fmt: skip
    return weights, biases


def test_uniform_is_torch_default_zero_one_with_biases_0_01():
    weights, biases = _split(_model("uniform"))
    assert weights.min() >= 0.0 and weights.max() < 1.0
    assert stats.kstest(weights, stats.uniform(0, 1).cdf).pvalue > 1e-3
    np.testing.assert_array_equal(biases, np.float32(0.01))


def test_normal_is_standard_normal():
    weights, biases = _split(_model("normal"))
    assert stats.kstest(weights, stats.norm(0, 1).cdf).pvalue > 1e-3
    np.testing.assert_array_equal(biases, np.float32(0.01))


@pytest.mark.parametrize("name, bound", [
    ("kaiming_uniform", lambda fan_in, fan_out: math.sqrt(6.0 / fan_in)),
    ("xavier_uniform", lambda fan_in, fan_out: math.sqrt(6.0 / (fan_in + fan_out))),
])  # fmt: skip
def test_fan_based_bounds_follow_the_formula(name, bound):
    model = _model(name)
    for param_name, param in model.named_parameters():
        values = param.detach().numpy()
        if param_name.endswith("bias"):
            np.testing.assert_array_equal(values, np.float32(0.01))
            continue
        fan_in = int(np.prod(values.shape[1:]))
        fan_out = values.shape[0] * int(np.prod(values.shape[2:]))
        b = bound(fan_in, fan_out)
        assert np.abs(values).max() <= b + 1e-7
        if values.size >= 50:
            assert stats.kstest(values.ravel(), stats.uniform(-b, 2 * b).cdf).pvalue > 1e-3


def test_spelled_out_ranges_and_biases():
    weights, biases = _split(_model("uniform(-0.15, 0.15)"))
    assert weights.min() >= -0.15 and weights.max() < 0.15
    np.testing.assert_array_equal(biases, np.float32(0.01))
    weights, biases = _split(_model("normal(0.5, 0.01, bias=0)"))
    assert abs(weights.mean() - 0.5) < 0.01 and abs(weights.std() - 0.01) < 0.002
    np.testing.assert_array_equal(biases, 0.0)
    _, biases = _split(_model("uniform(-0.3, 0.3, bias=same)"))
    assert np.unique(biases).size == biases.size and np.abs(biases).max() < 0.3


def test_the_old_uniform_is_reproduced_bit_for_bit():
    """What modelzoo called `uniform` until it followed the authors' code: every parameter, in
    layout order, U(-0.5, 0.5) from the run's init generator."""
    model = _model("uniform(-0.5, 0.5, bias=same)", seed=11)
    gen = generator(11, "init")
    for _, param in model.named_parameters():
        expected = torch.empty_like(param).uniform_(-0.5, 0.5, generator=gen)
        torch.testing.assert_close(param.detach(), expected, rtol=0, atol=0)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (_model("kaiming_normal", seed=s) for s in (5, 5, 6))
    for (_, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(),
                                          c.named_parameters()):  # fmt: skip
        assert torch.equal(pa, pb)
        if pa.dim() > 1:
            assert not torch.equal(pa, pc)


@pytest.mark.parametrize("text, canonical", [
    ("uniform", "uniform"), ("uniform(0, 1)", "uniform"), (" uniform( 0 ,1, bias=0.01 )", "uniform"),
    ("uniform(-0.5,0.5,bias=same)", "uniform(-0.5, 0.5, bias=same)"),
    ("kaiming_uniform(bias=0)", "kaiming_uniform(bias=0)"), ("normal(0, 1e-2)", "normal(0, 0.01)"),
])  # fmt: skip
def test_one_canonical_name_per_scheme(text, canonical):
    assert parse_init(text).name == canonical


@pytest.mark.parametrize("text, words", [
    ("unifrom", "expected one of uniform, normal"),
    ("uniform(1)", "takes 2 numbers"),
    ("uniform(1, 0)", "low < high"),
    ("normal(0, 0)", "std > 0"),
    ("kaiming_uniform(0.1)", "kaiming_uniform takes (bias=VALUE|same)"),
    ("uniform(-1, 1, bias=maybe)", "cannot read 'bias=maybe'"),
    ("kaiming_uniform(bias=same)", "draws from the fan of a weight matrix"),
    ("uniform(-1e308, 1e308)", "within float32's range"),
])  # fmt: skip
def test_bad_schemes_are_refused_with_what_was_expected(text, words):
    with pytest.raises(ModelZooError, match=words.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        parse_init(text)


def test_spec_validation_names_the_key(tmp_path):
    with pytest.raises(SpecError, match=r"training.init: unknown init 'xavier'; expected one of"):
        load_spec("tetris_seed", ["training.init=xavier"])
    with pytest.raises(SpecError, match=r"grid.training.init\[1\]: init 'uniform\(2\)'"):
        load_spec("mnist_hyp_1_fix", ["grid.training.init=[uniform, 'uniform(2)']"])
    with pytest.raises(SpecError, match=r"tetris_seed.*training.init: unknown init"):
        load_spec("tetris_seed", ["training.init=3"])
    spec = load_spec("tetris_seed", ["training.init=uniform( -0.15,0.15 )"])
    assert spec.resolved["training"]["init"] == "uniform(-0.15, 0.15)"


def test_the_meaning_of_a_name_is_part_of_the_fingerprint():
    plain = load_spec("tetris_seed")
    spelled = load_spec("tetris_seed", ["training.init=uniform(0, 1, bias=0.01)"])
    other = load_spec("tetris_seed", ["training.init=uniform(-0.5, 0.5, bias=same)"])
    assert plain.fingerprint == spelled.fingerprint != other.fingerprint
    assert plain.init_schemes() == {"uniform": {"weights": "U(0, 1)", "biases": "constant 0.01"}}


GRID = """\
name: init_grid
dataset: {name: digits}
architecture: {name: cnn_tiny}
training: {epochs: 1, batch_size: 64}
grid:
  training.init: [uniform, normal, kaiming_uniform, "kaiming_normal(bias=0)"]
seeds: {values: [1]}
"""


def test_manifest_records_every_scheme_of_the_grid(tmp_path):
    from modelzoo.run import generate

    (tmp_path / "grid.yaml").write_text(GRID)
    zoo_dir = generate(load_spec(tmp_path / "grid.yaml"), tmp_path, executor="local").zoo_dir
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    assert set(manifest["init"]) == {"uniform", "normal", "kaiming_uniform",
                                     "kaiming_normal(bias=0)"}  # fmt: skip
    assert manifest["init"]["normal"] == {"weights": "N(0, 1^2)", "biases": "constant 0.01"}
    assert manifest["init"]["kaiming_normal(bias=0)"]["biases"] == "constant 0"


def test_a_grid_that_names_one_scheme_twice_says_which_items_collide():
    with pytest.raises(SpecError, match=r"grid.training.init: 'uniform\(0, 1\)' \(item 1\) repeats "
                                        r"'uniform' \(item 0\) \(both mean 'uniform'\)"):  # fmt: skip
        load_spec("tetris_hyp", ["grid.training.init=[uniform, 'uniform(0, 1)']"])
