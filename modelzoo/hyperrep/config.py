"""The train-ae config: one table of keys, checked like zoo specs, resolved before anything runs.

A config is a nested mapping of six sections (``model``, ``projection``, ``loss``, ``data``,
``augment``, ``train``). It is built in layers, each overriding the last: the defaults below, a
preset (``presets.py``), a YAML file, ``--set KEY=VALUE`` overrides, then the ``--epochs`` /
``--device`` flags. :func:`resolve` checks every key of the result against :data:`FIELDS` and
raises one :class:`~modelzoo.errors.ModelZooError` line naming the source, the key, what was
expected and the valid choices (an unknown key lists the section's keys). The resolved mapping is
what ``config.yaml`` of a run folder records.

Why one table rather than dataclasses per section: the same rows drive validation, the defaults,
``docs/hyperrep.md`` and ``--set`` parsing, and a message can always name the full key path.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ModelZooError
from ..yamlfile import read_yaml

SECTIONS = ("model", "projection", "loss", "data", "augment", "train")
RUN_FORMAT = "modelzoo-hyperrep/1"  # the ``format`` of a run folder's config.yaml
RUN_RECORD_KEYS = ("format", "preset", "zoo")  # what a run's config.yaml holds besides settings
# YAML 1.1 (PyYAML) reads "1e-3" (no dot) as a string; such values are numbers here.
_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _numeric(value: Any) -> Any:
    """``"1e-3"`` -> ``0.001`` (also inside lists); everything else unchanged."""
    if isinstance(value, str) and _EXPONENT.match(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_numeric(v) for v in value]
    return value


@dataclass(frozen=True)
class Field:
    """One config key: its default, a checker returning an error text (or None), and a help line."""

    default: Any
    check: Callable[[Any], str | None]
    help: str


def _choice(*names: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value in names:
            return None
        return f"unknown value {value!r}; choose one of: {', '.join(names)}"

    return check


def _integer(low: int = 0, allow_none: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            return f"expected an integer >= {low}{' or null' if allow_none else ''}, got {value!r}"
        return None

    return check


def _number(
    low: float, high: float = math.inf, open_low: bool = False, open_high: bool = False
) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > low if open_low else value >= low)
        ok = ok and (value < high if open_high else value <= high)
        if ok:
            return None
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        return f"expected a number in {left}{low}, {high}{right}, got {value!r}"

    return check


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {value!r}"


def _text(allow_none: bool = True) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if (value is None and allow_none) or (isinstance(value, str) and value):
            return None
        return f"expected a name{' or null' if allow_none else ''}, got {value!r}"

    return check


def _fractions(value: Any) -> str | None:
    ok = isinstance(value, list | tuple) and len(value) == 3
    ok = ok and all(_number(0.0, 1.0)(v) is None for v in value)
    if ok and abs(sum(value) - 1.0) < 1e-6 and value[0] > 0:
        return None
    return f"expected three fractions [train, val, test] summing to 1, got {value!r}"


def _range(value: Any) -> str | None:
    ok = isinstance(value, list | tuple) and len(value) == 2
    if ok and all(_number(0.0, 1.0)(v) is None for v in value) and value[0] <= value[1]:
        return None
    return f"expected [low, high] with 0 <= low <= high <= 1, got {value!r}"


def _epochs(value: Any) -> str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return None
    if isinstance(value, list) and value and all(_integer()(v) is None for v in value):
        return None
    return f"expected null (every stored epoch), an epoch number or a list of them, got {value!r}"


FIELDS: dict[str, Field] = {
    # -------------------------------------------------------------------------------- model
    "model.name": Field(
        "attention", _text(False), "autoencoder (registry): attention, feedforward, sequential"
    ),
    "model.encoding": Field(
        "neuron",
        _choice("neuron", "weight"),
        "attention: one token per neuron/channel (AttN) or per weight (AttW)",
    ),
    "model.compression": Field(
        "token",
        _choice("token", "sequence"),
        "attention: compress a learned compression token (+t) or the whole output sequence",
    ),
    "model.d_model": Field(128, _integer(1), "token dimension"),
    "model.heads": Field(1, _integer(1), "attention heads per block"),
    "model.blocks": Field(2, _integer(1), "attention blocks per side (encoder, decoder)"),
    "model.ff_dim": Field(512, _integer(1), "hidden width of each block's feed-forward part"),
    "model.latent": Field(
        50, _integer(1), "latent size L (attention/feedforward: z; sequential: per token)"
    ),
    "model.dropout": Field(0.1, _number(0.0, 1.0, open_high=True), "dropout in every block"),
    "model.ff_layers": Field(10, _integer(1), "feedforward: FC-ReLU layers per side"),
    "model.token_size": Field(
        289,
        _integer(1),
        "sequential: values per token (longer neurons are cut into several tokens)",
    ),
    "model.window": Field(
        0, _integer(0), "sequential: tokens per training window (0: the whole network)"
    ),
    # -------------------------------------------------------------------------------- projection
    "projection.layers": Field(3, _integer(1), "projection head: linear layers"),
    "projection.hidden": Field(50, _integer(1), "projection head: hidden width"),
    "projection.out": Field(20, _integer(1), "projection head: output size"),
    # -------------------------------------------------------------------------------- loss
    "loss.gamma": Field(
        0.5,
        _number(0.0, 1.0),
        "weight of the contrastive term: L = g*Lc + "
        "(1-g)*(b*Ls + (1-b)*Lb); the 2021 paper's beta is 1-gamma",
    ),
    "loss.beta": Field(
        1.0,
        _number(0.0, 1.0),
        "structural share of the reconstruction part (1: no behavioural loss)",
    ),
    "loss.contrast": Field(
        "ntxent", _choice("ntxent", "positive"), "NT-Xent (EcD) or positive-only L_c+ (Ec+D)"
    ),
    "loss.temperature": Field(0.1, _number(0.0, open_low=True), "contrastive temperature T"),
    "loss.reconstruction": Field(
        "mse",
        _choice("mse", "lwln"),
        "structural loss: MSE in the AE's space, or LWLN (errors "
        "divided by each layer's train-split std)",
    ),
    "loss.behaviour": Field(
        "mse",
        _choice("mse", "ce", "kl"),
        "behavioural loss on softmax outputs: MSE, cross-entropy, or KL with a temperature",
    ),
    "loss.behaviour_temperature": Field(2.0, _number(0.0, open_low=True), "temperature of 'kl'"),
    "loss.queries": Field(
        "train",
        _choice("train", "dataset", "uniform"),
        "query inputs: the zoo's training images, another dataset's, or uniform noise",
    ),
    "loss.query_dataset": Field(None, _text(), "queries=dataset: a registered dataset name"),
    "loss.query_count": Field(256, _integer(1), "query inputs per batch"),
    # -------------------------------------------------------------------------------- data
    "data.epochs": Field(None, _epochs, "zoo epochs to train on (null: every stored epoch)"),
    "data.splits": Field([0.7, 0.15, 0.15], _fractions, "model-level split fractions"),
    "data.split_seed": Field(0, _integer(), "split seed (zoo.split)"),
    "data.normalize": Field(True, _flag, "standardise every layer by its train-split mean/std"),
    "data.target": Field(
        "view",
        _choice("view", "clean"),
        "reconstruction target: the augmented view (2021 code) or the view before erasing/noise",
    ),
    "data.status": Field(
        "ok", _choice("ok", "all"), "models trained on: ok ones, or all recorded states"
    ),
    "data.data_dir": Field(None, _text(), "folder of image files for the query sets"),
    # -------------------------------------------------------------------------------- augment
    "augment.permute": Field(True, _flag, "permute hidden units (function-preserving)"),
    "augment.permutations": Field(
        120,
        _integer(1, allow_none=True),
        "draw from a fixed pool of this many permutations (null: fresh ones)",
    ),
    "augment.erase": Field(0.5, _number(0.0, 1.0), "probability of erasing one range"),
    "augment.erase_scale": Field([0.03, 0.3], _range, "erased fraction of the vector"),
    "augment.noise": Field(0.0, _number(0.0), "std of additive Gaussian noise"),
    # -------------------------------------------------------------------------------- train
    "train.epochs": Field(100, _integer(1), "training epochs"),
    "train.batch_size": Field(500, _integer(1), "states (model, epoch) per batch; 2+ with NT-Xent"),
    "train.lr": Field(1e-4, _number(0.0, open_low=True), "AdamW peak learning rate"),
    "train.weight_decay": Field(1e-9, _number(0.0), "AdamW weight decay"),
    "train.warmup": Field(
        0.05,
        _number(0.0, 1.0, open_high=True),
        "linear warm-up, as a fraction of all steps (then cosine to 0)",
    ),
    "train.clip": Field(1.0, _number(0.0), "gradient-norm clipping (0: off)"),
    "train.checkpoint_every": Field(
        10, _integer(0), "keep a model checkpoint every N epochs (0: only at the end)"
    ),
    "train.eval_every": Field(1, _integer(1), "compute the R^2 columns every N epochs"),
    "train.select": Field(
        "best",
        _choice("best", "final"),
        "weights behind embeddings and load_autoencoder: best validation loss, or the last epoch",
    ),
    "train.seed": Field(0, _integer(), "seed of every random choice"),
    "train.device": Field("cpu", _text(False), "cpu, cuda, cuda:N or auto (a GPU when there is one)"),
}


def defaults() -> dict[str, dict[str, Any]]:
    """The default config as a nested mapping."""
    config: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for key, field in FIELDS.items():
        section, name = key.split(".")
        config[section][name] = copy.deepcopy(field.default)
    return config


def merge(
    base: Mapping[str, Any],
    layer: Mapping[str, Any],
    source: str,
    origins: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``layer`` over ``base``, section by section; unknown sections or keys are errors.
    ``origins`` (if given) records which source set each key, for error messages."""
    if not isinstance(layer, Mapping):
        raise ModelZooError(f"{source}: expected a mapping of sections ({', '.join(SECTIONS)})")
    merged = copy.deepcopy(dict(base))
    for section, values in layer.items():
        if section not in SECTIONS:
            raise ModelZooError(
                f"{source}: unknown section {section!r}; choose one of: {', '.join(SECTIONS)}"
            )
        if not isinstance(values, Mapping):
            raise ModelZooError(f"{source}: {section}: expected a mapping of keys")
        for name, value in values.items():
            key = f"{section}.{name}"
            if key not in FIELDS:
                known = sorted(k.split(".")[1] for k in FIELDS if k.startswith(section + "."))
                raise ModelZooError(
                    f"{source}: unknown key {key!r}; keys of {section}: {', '.join(known)}"
                )
            merged.setdefault(section, {})[name] = _numeric(copy.deepcopy(value))
            if origins is not None:
                origins[key] = source
    return merged


def parse_overrides(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["loss.gamma=0.2", ...]`` as a nested mapping (values parsed as YAML)."""
    layer: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key.count(".") != 1:
            raise ModelZooError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. loss.gamma=0.2")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise ModelZooError(f"--set {key}: cannot parse {text!r} as a YAML value") from None
        section, name = key.split(".")
        layer.setdefault(section, {})[name] = value
    return layer


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file (data only, no duplicate keys); a run's config.yaml gives its settings."""
    loaded = read_yaml(path)
    if loaded is None:  # an empty file is more likely a mistake than a wish for the defaults
        raise ModelZooError(f"{path}: empty; expected a mapping of sections ({', '.join(SECTIONS)})")
    if isinstance(loaded, dict) and loaded.get("format") == RUN_FORMAT:
        loaded = run_settings(loaded)
    return loaded


def run_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """A run folder's config.yaml without the record of where it ran: its settings alone."""
    return {k: v for k, v in record.items() if k not in RUN_RECORD_KEYS}


def resolve(
    config: Mapping[str, Any], source: str = "config", origins: dict[str, str] | None = None
) -> dict[str, Any]:
    """Check every key of a merged config; returns it with lists normalised. Errors name the
    source that set the key (``origins``), else ``source``."""
    origins = origins or {}
    for key, field in FIELDS.items():
        section, name = key.split(".")
        value = config.get(section, {}).get(name, field.default)
        problem = field.check(value)
        if problem:
            raise ModelZooError(f"{origins.get(key, source)}: {key}: {problem}")
    from .autoencoders import list_autoencoders

    model, loss = config["model"], config["loss"]
    if model["name"] not in list_autoencoders():
        raise ModelZooError(
            f"{origins.get('model.name', source)}: model.name: unknown autoencoder "
            f"{model['name']!r}; choose one of: {', '.join(list_autoencoders())}"
        )
    if model["d_model"] % model["heads"]:
        divisors = [h for h in range(1, model["d_model"] + 1) if model["d_model"] % h == 0]
        raise ModelZooError(
            f"{origins.get('model.heads', source)}: model.heads: {model['heads']} does not "
            f"divide model.d_model {model['d_model']}; choose one of: "
            f"{', '.join(map(str, divisors[:12]))}{', ...' if len(divisors) > 12 else ''}"
        )
    if config["data"]["splits"][1] == 0 and config["train"]["select"] == "best":
        raise ModelZooError(
            f"{origins.get('data.splits', source)}: data.splits: a validation fraction of 0 "
            "leaves train.select=best nothing to choose on; set train.select=final"
        )
    if loss["queries"] == "dataset":
        from ..data.registry import list_datasets

        where = origins.get("loss.query_dataset", origins.get("loss.queries", source))
        if loss["query_dataset"] not in list_datasets():
            raise ModelZooError(
                f"{where}: loss.query_dataset: queries=dataset needs a registered dataset, got "
                f"{'nothing' if loss['query_dataset'] is None else repr(loss['query_dataset'])}; "
                f"choose one of: {', '.join(list_datasets())}"
            )
    if loss["query_dataset"] and loss["queries"] != "dataset":
        raise ModelZooError(
            f"{origins.get('loss.query_dataset', source)}: loss.query_dataset: only read when "
            f"loss.queries=dataset (it is {loss['queries']!r}); set both or neither"
        )
    if loss["gamma"] > 0 and config["train"]["batch_size"] < 2:
        raise ModelZooError(
            f"{origins.get('train.batch_size', source)}: train.batch_size: NT-Xent (loss.gamma "
            f"{loss['gamma']} > 0) compares the samples of a batch: expected an integer >= 2, got "
            f"{config['train']['batch_size']}"
        )
    if loss["gamma"] == 1 and loss["beta"] < 1:
        raise ModelZooError(f"{source}: loss.beta: gamma=1 trains no decoder, so beta must be 1")
    resolved = {section: dict(config[section]) for section in SECTIONS}
    resolved["data"]["splits"] = [float(v) for v in resolved["data"]["splits"]]
    resolved["augment"]["erase_scale"] = [float(v) for v in resolved["augment"]["erase_scale"]]
    return resolved


def build_config(
    preset: str | None = None,
    file: str | Path | None = None,
    overrides: Iterable[str] = (),
    **flags: Any,
) -> dict[str, Any]:
    """Defaults <- preset <- YAML file <- ``--set`` <- flags (``epochs=``, ``device=``)."""
    from .presets import get_preset

    config, origins = defaults(), {}
    if preset is not None:
        config = merge(config, get_preset(preset).settings, f"preset {preset}", origins)
    if file is not None:
        config = merge(config, read_config_file(file), str(file), origins)
    config = merge(config, parse_overrides(overrides), "--set", origins)
    for name, value in flags.items():
        if value is not None:
            config = merge(config, {"train": {name: value}}, f"--{name}", origins)
    return resolve(config, "config", origins)
