"""Tiny zoos shared by the zoo / dataset / verify / docs tests, generated once per test session.

Built with the default (vectorised) engine, as published zoos are; tests/test_oracle.py checks
every metric they store against an independent recomputation from their weights.

A helper module rather than fixtures in conftest.py: each zoo is built on first use (cached), so
every test file that imports these gets the same folders. Tests that damage a zoo copy it first.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

GRID_SPEC = """\
name: grid_tetris
dataset:
  name: tetris
architecture:
  name: tetris_mlp
training:
  epochs: 4
  batch_size: 10
  optimizer: adam
  lr: 1.0e-2
  init: "uniform(-0.5, 0.5, bias=same)"   # models that differ in accuracy within 4 epochs
grid:
  training.activation: [tanh, relu]
seeds:
  range: [1, 6]
"""


@functools.cache
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="modelzoo-zoo-tests-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@functools.cache
def grid_zoo() -> Path:
    """12 tetris MLPs (2 activations x 6 seeds), epochs 0..4."""
    from modelzoo.run import generate
    from modelzoo.spec import load_spec

    spec_path = _root() / "grid_tetris.yaml"
    spec_path.write_text(GRID_SPEC)
    return generate(load_spec(spec_path), _root(), executor="local").zoo_dir


@functools.cache
def seed_zoo() -> Path:
    """The bundled tetris_seed spec, 12 seeds x 3 epochs (several shards)."""
    from modelzoo.run import generate
    from modelzoo.spec import load_spec

    spec = load_spec("tetris_seed", ["training.epochs=3", "seeds.range=[1,12]"])
    return generate(spec, _root(), executor="local").zoo_dir


@functools.cache
def digits_zoo() -> Path:
    """6 cnn_tiny models on digits, epochs 0..2 (the CNN paths), with dropout 0.25 and a
    validation split (a fifth of the train split)."""
    from modelzoo.run import generate
    from modelzoo.spec import load_spec

    spec = load_spec("digits_seed", ["training.epochs=2", "seeds.range=[1,6]",
                                     "training.dropout=0.25", "dataset.train_fraction=0.8"])  # fmt: skip
    return generate(spec, _root(), executor="local").zoo_dir


def copy_zoo(source: Path, target: Path) -> Path:
    """A private copy that a test may damage."""
    shutil.copytree(source, target)
    return target


@functools.cache
def synthetic_zoo() -> Path:
    """6 tetris MLPs with random weights (no training), written by the real writer: model 2
    diverged after epoch 1 (NaN from epoch 2 on), model 4 failed (NaN everywhere)."""
    import numpy as np

    from modelzoo.evaluation import SCALAR_METRICS
    from modelzoo.plan import plan
    from modelzoo.spec import load_spec
    from modelzoo.store.writer import ZooWriter
    from modelzoo.train.result import RunResult

    spec = load_spec(
        "tetris_seed", ["name=synthetic_tetris", "training.epochs=3", "seeds.range=[1,6]"]
    )
    the_plan = plan(spec)
    dataset = {
        "name": "tetris",
        "input_shape": list(the_plan.input_shape),
        "num_classes": the_plan.num_classes,
        "spec": spec.resolved["dataset"],
    }
    writer = ZooWriter(_root() / spec.name, spec, the_plan.runs, dataset, the_plan.layout)
    rng = np.random.default_rng(0)
    results = []
    for run in the_plan.runs:
        weights = rng.normal(0, 0.5, (4, the_plan.parameters)).astype(np.float32)
        metrics = {name: rng.random(4) for name in SCALAR_METRICS}
        f1 = rng.random((4, 4)).astype(np.float32)
        result = RunResult(run.model_id, run.key, weights, metrics, f1)
        if run.model_id == 2:
            result = RunResult.failed(run.model_id, run.key, 4, the_plan.parameters, 4, "")
            result.weights = np.full_like(weights, np.nan)
            result.weights[:2], result.f1[:2] = weights[:2], f1[:2]
            for name in SCALAR_METRICS:
                result.metrics[name][:2] = metrics[name][:2]
            result.status, result.error, result.diverged_epoch = "diverged", "non-finite loss", 2
        elif run.model_id == 4:
            result = RunResult.failed(run.model_id, run.key, 4, the_plan.parameters, 4, "boom")
        results.append(result)
    writer.add(results[:3])
    writer.add(results[3:])
    return writer.dir
