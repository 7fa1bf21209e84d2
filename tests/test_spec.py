"""Spec loading, validation, expansion and the bundled presets."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from modelzoo.errors import SpecError
from modelzoo.plan import plan
from modelzoo.spec import (
    expand,
    json_schema,
    list_bundled_specs,
    load_spec,
    resolve_spec_path,
    validate,
)

# (models, parameters per model, epochs) from the papers' tables
PRESETS = {
    "tetris_seed": (1000, 100, 75),  # 2021, Table 8/9
    "tetris_hyp": (3600, 100, 75),  # 2021: 3600 trained, 2900 kept
    "mnist_seed": (1000, 2464, 25),
    "fashion_seed": (1000, 2464, 25),
    "mnist_hyp_1_fix": (1152, 2464, 25),
    "mnist_hyp_1_rand": (1152, 2464, 25),
    "mnist_hyp_5_fix": (1280, 2464, 25),
    "mnist_hyp_5_rand": (1280, 2464, 25),
    "svhn_seed": (1000, 2464, 50),  # 2022 Appendix A, Table 5
    "cifar10_seed": (1000, 2864, 50),
    "stl10_seed": (1000, 2864, 50),
    "svhn_cnn_medium": (1200, 10853, 50),  # 2025 Appendix A
    "cifar10_cnn_medium": (1200, 10853, 50),
    "eurosat_cnn_medium": (1200, 10853, 50),
    "digits_seed": (200, 1042, 25),
}


def test_every_paper_zoo_has_a_preset() -> None:
    """Every bundled spec is checked against its paper: here, or in tests/test_model_zoos.py."""
    from test_model_zoos import MODEL_ZOOS

    assert set(list_bundled_specs()) == set(PRESETS) | set(MODEL_ZOOS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_matches_paper(name: str) -> None:
    spec = load_spec(name)
    models, parameters, epochs = PRESETS[name]
    the_plan = plan(spec)
    assert len(the_plan.runs) == models
    assert the_plan.parameters == parameters
    assert spec.resolved["training"]["epochs"] == epochs
    assert the_plan.states == models * (epochs + 1)  # every epoch + initialisation
    assert len({r.model_id for r in the_plan.runs}) == models
    assert len({r.key for r in the_plan.runs}) == models


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_satisfy_the_exported_json_schema(name: str) -> None:
    raw = yaml.safe_load(resolve_spec_path(name).read_text())
    jsonschema.validate(raw, json_schema())


def test_hyp_zoo_seed_modes() -> None:
    fixed = expand(load_spec("mnist_hyp_5_fix"))
    assert {r.seed for r in fixed} == {1, 2, 3, 4, 5}
    rand = expand(load_spec("mnist_hyp_5_rand"))
    per_config: dict[str, list[int]] = {}
    for run in rand:
        per_config.setdefault(json.dumps(run.factors, sort_keys=True), []).append(run.seed)
    assert len(per_config) == 256
    assert all(len(set(seeds)) == 5 for seeds in per_config.values())
    assert all(1 <= s <= 1_000_000 for s in (r.seed for r in rand))
    assert len({tuple(s) for s in per_config.values()}) > 200  # drawn, not shared
    assert {r.seed for r in expand(load_spec("mnist_hyp_1_fix"))} == {42}


def test_expansion_is_deterministic() -> None:
    a, b = expand(load_spec("mnist_hyp_1_rand")), expand(load_spec("mnist_hyp_1_rand"))
    assert [(r.model_id, r.seed, r.key) for r in a] == [(r.model_id, r.seed, r.key) for r in b]


def test_meta_seed_changes_random_seeds_only() -> None:
    a = expand(load_spec("mnist_hyp_1_rand"))
    b = expand(load_spec("mnist_hyp_1_rand", ["seeds.meta_seed=1"]))
    assert [r.factors for r in a] == [r.factors for r in b]
    assert [r.seed for r in a] != [r.seed for r in b]


def test_bundled_spec_resolves_by_path_and_by_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for spelling in ("specs/mnist_hyp_5_rand.yaml", "mnist_hyp_5_rand.yaml", "mnist_hyp_5_rand"):
        assert load_spec(spelling).name == "mnist_hyp_5_rand"
    own = tmp_path / "specs" / "mnist_hyp_5_rand.yaml"
    own.parent.mkdir()
    own.write_text(resolve_spec_path("tetris_seed").read_text())
    assert load_spec("specs/mnist_hyp_5_rand.yaml").name == "tetris_seed"  # a path wins


def test_overrides_are_validated_and_recorded(tiny_spec: Path) -> None:
    spec = load_spec(tiny_spec, ["training.epochs=7", "grid.training.lr=[0.1, 0.2]"])
    assert spec.resolved["training"]["epochs"] == 7
    assert spec.resolved["grid"]["training.lr"] == [0.1, 0.2]
    assert len(expand(spec)) == 2 * 2 * 5
    with pytest.raises(SpecError, match="training.epochs: expected a number >= 1"):
        load_spec(tiny_spec, ["training.epochs=-1"])
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        load_spec(tiny_spec, ["training.epochs"])


def test_stored_epochs_forms(tiny_spec: Path) -> None:
    assert load_spec(tiny_spec).stored_epochs() == (0, 1, 2, 3)
    assert load_spec(tiny_spec, ["store.epochs=[0, 3]"]).stored_epochs() == (0, 3)
    every = load_spec(tiny_spec, ["training.epochs=10", "store.epochs={every: 4}"])
    assert every.stored_epochs() == (0, 4, 8, 10)
    with pytest.raises(SpecError, match="exceed training.epochs"):
        load_spec(tiny_spec, ["store.epochs=[0, 9]"])


def test_fingerprint_ignores_execution_hints(tiny_spec: Path) -> None:
    base = load_spec(tiny_spec)
    assert base.fingerprint == load_spec(tiny_spec, ["execution.models_per_task=1"]).fingerprint
    assert base.fingerprint != load_spec(tiny_spec, ["training.lr=0.5"]).fingerprint
    assert base.fingerprint != load_spec(tiny_spec, ["execution.engine=reference"]).fingerprint


BAD_SPECS = [
    ("name: x\ndataset: [unclosed", "malformed YAML at line"),
    ("!!python/object/apply:os.system ['echo pwned']", "YAML tag not allowed"),
    ("name: x\nname: y\n", "duplicate key 'name'"),
    ("- a list", "must be a YAML mapping"),
    ("{name: x, dataset: {name: mnsit}, architecture: {name: cnn_small}, "
     "training: {epochs: 1}, seeds: {range: [1, 2]}}", "dataset.name: unknown value 'mnsit'"),
    ("{name: x, dataset: {name: mnist}, architecture: {name: cnn_big}, "
     "training: {epochs: 1}, seeds: {range: [1, 2]}}", "architecture.name: unknown value 'cnn_big'"),
    ("{name: x, dataset: {name: mnist}, architecture: {name: cnn_small}, "
     "training: {epochs: -2}, seeds: {range: [1, 2]}}", "training.epochs: expected a number >= 1"),
    ("{name: x, dataset: {name: mnist}, architecture: {name: cnn_small}, "
     "training: {epochs: five}, seeds: {range: [1, 2]}}", "training.epochs: expected an integer"),
    ("{name: x, dataset: {name: mnist}, architecture: {name: cnn_small}, "
     "training: {epochs: 1, activation: tahn}, seeds: {range: [1, 2]}}",
     "unknown value 'tahn'; choose one of: tanh, relu"),
    ("{name: x, dataset: {name: mnist}, architecture: {name: cnn_small}, "
     "training: {epochs: 1, colour: red}, seeds: {range: [1, 2]}}", "training.colour: unknown key"),
    ("{name: x, dataset: {name: mnist}, architecture: {name: cnn_small}, "
     "training: {epochs: 1}, grid: {training.lr: []}, seeds: {range: [1, 2]}}",
     "grid.training.lr: expected a non-empty list"),
    ("{name: x, dataset: {name: mnist}, architecture: {name: cnn_small}, "
     "training: {epochs: 1}, grid: {training.speed: [1]}, seeds: {range: [1, 2]}}",
     "grid.training.speed: not a key that can vary"),
    ("{name: x, dataset: {name: mnist}, architecture: {name: cnn_small}, "
     "training: {epochs: 1}}", "seeds: required section is missing"),
    ("{name: x, dataset: {name: mnist}, architecture: {name: cnn_small}, "
     "training: {epochs: 1}, seeds: {range: [1, 2], random: 3}}", "expected exactly one of"),
    ("{dataset: {name: mnist}, architecture: {name: cnn_small}, "
     "training: {epochs: 1}, seeds: {range: [1, 2]}}", "name: required key is missing"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_SPECS)
def test_bad_specs_get_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("{name: x, dataset: {name: mnsit}, architecture: {name: nope}, "
                    "training: {epochs: 0, lr: -1}, seeds: {range: [1, 2]}}")  # fmt: skip
    with pytest.raises(SpecError, match="4 problems") as caught:
        load_spec(path)
    for key in ("dataset.name", "architecture.name", "training.epochs", "training.lr"):
        assert key in str(caught.value)


grid_values = st.lists(st.integers(1, 50), min_size=1, max_size=4, unique=True)


@settings(max_examples=40, deadline=None)
@given(
    batch_sizes=grid_values,
    epochs=grid_values,
    seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=5, unique=True),
)
def test_expansion_is_the_cartesian_product(batch_sizes, epochs, seeds) -> None:
    raw = {
        "name": "prop", "dataset": {"name": "tetris"}, "architecture": {"name": "tetris_mlp"},
        "training": {"epochs": 60},
        "grid": {"training.batch_size": batch_sizes, "training.epochs": epochs},
        "seeds": {"values": seeds},
    }  # fmt: skip
    runs = expand(validate(raw))
    assert len(runs) == len(batch_sizes) * len(epochs) * len(seeds)
    assert [r.model_id for r in runs] == list(range(len(runs)))
    combos = {(r.training["batch_size"], r.training["epochs"], r.seed) for r in runs}
    assert len(combos) == len(runs)
    # first grid key varies slowest, seeds fastest
    assert [r.training["batch_size"] for r in runs[: len(seeds)]] == [batch_sizes[0]] * len(seeds)
    assert [r.seed for r in runs[: len(seeds)]] == seeds
    assert all(r.stored_epochs == tuple(range(r.training["epochs"] + 1)) for r in runs)
    assert [r.key for r in runs] == [r.key for r in expand(validate(raw))]


def test_schema_rejects_what_validation_rejects() -> None:
    raw = yaml.safe_load(resolve_spec_path("tetris_seed").read_text())
    raw["training"]["colour"] = "red"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, json_schema())


def test_a_fixed_value_beside_a_grid_over_the_same_key_is_refused() -> None:
    """`--set training.init=normal` on a spec whose grid varies init would be silently ignored."""
    with pytest.raises(SpecError, match=r"--set training.init: the spec's grid varies "
                                        r"training.init, so a fixed value would be ignored"):  # fmt: skip
        load_spec("tetris_hyp", ["training.init=normal"])
    assert load_spec("tetris_hyp", ["grid.training.init=[normal]"]).resolved["grid"][
        "training.init"] == ["normal"]  # fmt: skip
