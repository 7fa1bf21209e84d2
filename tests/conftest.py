"""Shared fixtures: tiny specs that train in seconds, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")

TINY_TETRIS = """\
name: tiny_tetris
dataset:
  name: tetris
  options: {train_size: 64, test_size: 32}
architecture:
  name: tetris_mlp
training:
  epochs: 3
  batch_size: 8
  optimizer: adam
  lr: 1.0e-2
  activation: tanh
  init: uniform
grid:
  training.activation: [tanh, relu]
seeds:
  range: [1, 5]
execution:
  models_per_task: 3
"""


@pytest.fixture
def tiny_spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_tetris.yaml"
    path.write_text(TINY_TETRIS)
    return path
