"""Diverged, failed and not-yet-trained models: recorded with their status, never silently used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from test_zoo_helpers import copy_zoo, seed_zoo, synthetic_zoo

from modelzoo import ZooDataset, open_zoo
from modelzoo.cli import main
from modelzoo.errors import ModelZooError
from modelzoo.store import format as fmt
from modelzoo.store.verify import verify_zoo


def test_statuses_are_columns_and_views() -> None:
    zoo = open_zoo(synthetic_zoo())
    assert zoo.models.set_index("model_id")["status"].to_dict() == {
        0: "ok",
        1: "ok",
        2: "diverged",
        3: "ok",
        4: "failed",
        5: "ok",
    }
    assert len(zoo.select(status="ok")) == 4 and len(zoo.select(status=["diverged", "failed"])) == 2
    assert "diverged 1, failed 1, ok 4" in repr(zoo)
    assert np.isnan(zoo.weights(2, 2)).all() and np.isfinite(zoo.weights(2, 1)).all()
    assert np.isnan(zoo.weights(4)).all()


def test_models_without_weights_are_refused() -> None:
    zoo = open_zoo(synthetic_zoo())
    zoo.model(2, 1)  # before it diverged: a working network
    with pytest.raises(ModelZooError, match=r"model 2 has no finite weights at epoch 3 .*diverged"):
        zoo.model(2, 3)
    with pytest.raises(ModelZooError, match="status failed"):
        zoo.model(4, 0)


def test_datasets_keep_only_recorded_states() -> None:
    zoo = open_zoo(synthetic_zoo())
    ok_only = ZooDataset(zoo, "all")
    assert set(ok_only.samples["model_id"]) == {0, 1, 3, 5}
    everything = ZooDataset(zoo, "all", status=None, normalize=True)
    pairs = set(map(tuple, everything.samples.to_numpy().tolist()))
    assert (2, 1) in pairs and (2, 2) not in pairs and not any(m == 4 for m, _ in pairs)
    assert np.isfinite(everything.weights(np.arange(len(everything)))).all()
    assert len(everything) == 4 * 4 + 2


def test_info_lists_statuses() -> None:
    result = CliRunner().invoke(main, ["info", str(synthetic_zoo())])
    assert result.exit_code == 0 and "diverged 1, failed 1, ok 4" in result.output


def test_a_zoo_without_models_yet_opens_and_verifies(tmp_path: Path) -> None:
    zoo_dir = copy_zoo(seed_zoo(), tmp_path / "zoo")
    columns = ["model_id", "run_key", "seed", "status", "error"]
    pd.DataFrame(
        {c: pd.Series(dtype="int64" if c in ("model_id", "seed") else "str") for c in columns}
    ).to_parquet(zoo_dir / fmt.MODELS_TABLE)
    metrics = pd.read_parquet(zoo_dir / fmt.METRICS_TABLE)
    metrics.iloc[:0].to_parquet(zoo_dir / fmt.METRICS_TABLE)
    manifest = json.loads((zoo_dir / fmt.MANIFEST).read_text())
    manifest["shards"], manifest["counts"] = (
        [],
        {"planned": 12, "done": 0, "ok": 0, "diverged": 0, "failed": 0},
    )
    (zoo_dir / fmt.MANIFEST).write_text(json.dumps(manifest))
    for shard in (zoo_dir / fmt.SHARD_DIR).glob("*.h5"):
        shard.unlink()
    zoo = open_zoo(zoo_dir)
    assert len(zoo) == 0 and zoo.weights().shape == (0, 4, 100) and len(ZooDataset(zoo, "all")) == 0
    assert verify_zoo(zoo_dir).ok
    assert CliRunner().invoke(main, ["info", str(zoo_dir)]).exit_code == 0
