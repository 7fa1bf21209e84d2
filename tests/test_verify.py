"""Damaged zoos: `modelzoo verify` names the damage, `open_zoo` fails with one StoreError line."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_zoo_helpers import copy_zoo, seed_zoo

from modelzoo import open_zoo
from modelzoo.cli import main
from modelzoo.errors import StoreError
from modelzoo.store import format as fmt
from modelzoo.store.verify import verify_zoo


@pytest.fixture
def zoo_copy(tmp_path: Path) -> Path:
    return copy_zoo(seed_zoo(), tmp_path / "zoo")


def _shard(zoo: Path, index: int = 0) -> Path:
    return zoo / json.loads((zoo / fmt.MANIFEST).read_text())["shards"][index]["path"]


def _edit_manifest(zoo: Path, edit) -> None:
    manifest = json.loads((zoo / fmt.MANIFEST).read_text())
    edit(manifest)
    (zoo / fmt.MANIFEST).write_text(json.dumps(manifest))


def _verify(zoo: Path):
    return CliRunner().invoke(main, ["verify", str(zoo)])


def test_intact_zoo_verifies(zoo_copy: Path) -> None:
    result = _verify(zoo_copy)
    assert result.exit_code == 0 and "intact" in result.output
    assert verify_zoo(zoo_copy).ok


def test_flipped_byte_is_detected_and_named(zoo_copy: Path) -> None:
    shard = _shard(zoo_copy, 1)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    result = _verify(zoo_copy)
    assert result.exit_code == 1
    assert f"{shard.parent.name}/{shard.name}: sha256 mismatch" in result.output
    with pytest.raises(StoreError, match="sha256"):
        open_zoo(zoo_copy, verify=True)


def test_truncated_shard_is_detected_and_reading_it_gives_a_store_error(zoo_copy: Path) -> None:
    shard = _shard(zoo_copy, 0)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    result = _verify(zoo_copy)
    assert result.exit_code == 1 and shard.name in result.output and "truncated" in result.output
    # the manifest records each shard's byte size: opening (and so `info`) notices, no hashing
    with pytest.raises(StoreError, match=f"{shard.name}.*truncated.*the manifest says"):
        open_zoo(zoo_copy)
    info = CliRunner().invoke(main, ["info", str(zoo_copy)])
    assert info.exit_code == 2 and info.output.count("\n") == 1 and shard.name in info.output
    status = CliRunner().invoke(main, ["status", str(zoo_copy)])
    assert status.exit_code == 1 and f"damaged: shards/{shard.name}" in status.output


def test_status_of_an_intact_zoo_names_no_damage(zoo_copy: Path) -> None:
    status = CliRunner().invoke(main, ["status", str(zoo_copy)])
    assert status.exit_code == 0 and "damaged" not in status.output


def test_missing_shard_is_noticed_on_open_and_by_info(zoo_copy: Path) -> None:
    _shard(zoo_copy, 1).unlink()
    with pytest.raises(StoreError, match="missing"):
        open_zoo(zoo_copy)
    info = CliRunner().invoke(main, ["info", str(zoo_copy)])
    assert info.exit_code == 2 and "missing" in info.output


def test_truncated_shard_without_size_record_still_gives_a_store_error(zoo_copy: Path) -> None:
    shard = _shard(zoo_copy, 0)
    shard.write_bytes(shard.read_bytes()[:3000])
    _edit_manifest(zoo_copy, lambda m: m["shards"][0].pop("bytes"))
    with pytest.raises(StoreError, match=f"{shard.name}: damaged or truncated shard"):
        open_zoo(zoo_copy).weights(0)


def test_garbage_in_the_weights_is_a_store_error_when_hdf5_cannot_read_it(zoo_copy: Path) -> None:
    shard = _shard(zoo_copy, 0)
    data = bytearray(shard.read_bytes())
    data[:2048] = bytes(2048)  # wipe the superblock and root group
    shard.write_bytes(bytes(data))
    _edit_manifest(zoo_copy, lambda m: m["shards"][0].pop("bytes"))
    with pytest.raises(StoreError, match="HDF5 cannot open it"):
        open_zoo(zoo_copy).weights(0)
    assert "HDF5 cannot read the shard" in _verify(zoo_copy).output


def test_missing_shard(zoo_copy: Path) -> None:
    _shard(zoo_copy, 1).unlink()
    result = _verify(zoo_copy)
    assert result.exit_code == 1 and "shard is missing" in result.output
    with pytest.raises(StoreError, match="missing"):
        open_zoo(zoo_copy)


def test_manifest_path_escaping_the_zoo(zoo_copy: Path) -> None:
    _edit_manifest(zoo_copy, lambda m: m["shards"][0].update(path="../elsewhere/shard.h5"))
    with pytest.raises(StoreError, match="escapes the zoo folder"):
        open_zoo(zoo_copy)
    result = _verify(zoo_copy)
    assert result.exit_code == 1 and "escapes the zoo folder" in result.output


def test_wrong_format_version(zoo_copy: Path) -> None:
    _edit_manifest(zoo_copy, lambda m: m.update(format_version=99))
    with pytest.raises(StoreError, match="format_version: expected 1, got 99"):
        open_zoo(zoo_copy)
    result = _verify(zoo_copy)
    assert result.exit_code == 2 and "format_version" in result.output


def test_missing_or_damaged_tables(zoo_copy: Path) -> None:
    (zoo_copy / fmt.MODELS_TABLE).unlink()
    with pytest.raises(StoreError, match=r"models\.parquet: table is missing"):
        open_zoo(zoo_copy)
    assert _verify(zoo_copy).exit_code == 1
    (zoo_copy / fmt.METRICS_TABLE).write_bytes(b"PAR1 not really parquet")
    with pytest.raises(StoreError, match=r"models\.parquet"):
        open_zoo(zoo_copy)
    result = _verify(zoo_copy)
    assert result.exit_code == 1 and "metrics.parquet: unreadable table" in result.output


def test_tables_that_disagree_with_the_shards(zoo_copy: Path) -> None:
    import pandas as pd

    models = pd.read_parquet(zoo_copy / fmt.MODELS_TABLE)
    models.loc[0, "status"] = "failed"
    models.to_parquet(zoo_copy / fmt.MODELS_TABLE)
    metrics = pd.read_parquet(zoo_copy / fmt.METRICS_TABLE)
    metrics.loc[5, "test_acc"] = 0.123
    metrics.to_parquet(zoo_copy / fmt.METRICS_TABLE)
    problems = verify_zoo(zoo_copy).problems
    assert any("model 0" in p for p in problems)
    assert any("values differ" in p for p in problems)
    assert any("counts.ok" in p for p in problems)


def test_not_a_zoo_is_bad_input(tmp_path: Path) -> None:
    assert _verify(tmp_path / "absent").exit_code == 2
    assert _verify(tmp_path).exit_code == 2
    (tmp_path / fmt.MANIFEST).write_text("{ not json")
    result = _verify(tmp_path)
    assert result.exit_code == 1 and "unreadable manifest" in result.output
    with pytest.raises(StoreError, match="unreadable manifest"):
        open_zoo(tmp_path)


def test_nothing_is_unpickled(zoo_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_, **__):
        raise AssertionError("a zoo file was unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    zoo = open_zoo(zoo_copy, verify=True)
    assert np.isfinite(zoo.weights()).all() and len(zoo.metrics) == 12 * 4
    zoo.model(0, 3)


def test_unlisted_shard_is_a_note_not_damage(zoo_copy: Path) -> None:
    (zoo_copy / fmt.SHARD_DIR / "shard-9999999.h5").write_bytes(b"leftover")
    result = _verify(zoo_copy)
    assert result.exit_code == 0 and "note: shards/shard-9999999.h5" in result.output
