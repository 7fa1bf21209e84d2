"""Review of the Zoo API as an outside user would use it: damaged zoos give one StoreError (never
a raw h5py / pyarrow / pandas error), readers stay consistent while a zoo is being extended, and
the dataset's arguments fail loudly instead of silently giving the wrong samples."""

from __future__ import annotations

import json
import shutil
import threading
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from test_zoo_helpers import copy_zoo, grid_zoo, seed_zoo, synthetic_zoo
from torch.utils.data import DataLoader

from modelzoo import ZooDataset, open_zoo
from modelzoo.cli import main
from modelzoo.errors import ModelZooError, StoreError
from modelzoo.store.format import sha256_file


def _edit_manifest(zoo: Path, edit) -> None:
    manifest = json.loads((zoo / "zoo.json").read_text())
    edit(manifest)
    (zoo / "zoo.json").write_text(json.dumps(manifest))


def _edit_table(zoo: Path, name: str, edit) -> None:
    frame = pq.read_table(zoo / name).to_pandas()
    pq.write_table(pa.Table.from_pandas(edit(frame), preserve_index=False), zoo / name)


def _verify(zoo: Path):
    result = CliRunner().invoke(main, ["verify", str(zoo)])
    assert isinstance(result.exception, SystemExit | None), result.exception  # no traceback
    return result


def _shard_paths(zoo: Path) -> list[Path]:
    return [zoo / s["path"] for s in json.loads((zoo / "zoo.json").read_text())["shards"]]


MANIFEST_DAMAGE = {
    "architecture_not_a_dict": lambda m: m.update(architecture="tetris_mlp"),
    "dataset_not_a_dict": lambda m: m.update(dataset="tetris"),
    "dataset_without_input_shape": lambda m: m["dataset"].pop("input_shape"),
    "shard_models_not_a_number": lambda m: m["shards"][0].update(models="x"),
    "shard_listed_twice": lambda m: m["shards"].append(dict(m["shards"][0])),
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE), ids=list(MANIFEST_DAMAGE))
def test_malformed_manifest_entries_are_one_store_error(tmp_path: Path, damage: str) -> None:
    zoo = copy_zoo(seed_zoo(), tmp_path / "zoo")
    _edit_manifest(zoo, MANIFEST_DAMAGE[damage])
    with pytest.raises(StoreError, match="zoo.json"):
        open_zoo(zoo)
    result = _verify(zoo)
    assert result.exit_code == 1 and "damaged:" in result.output


TABLE_DAMAGE = {
    "row_as_text": ("models.parquet", lambda t: t.assign(row=t["row"].astype(str))),
    "model_id_as_text": ("models.parquet", lambda t: t.assign(model_id=t["model_id"].astype(str))),
    "model_id_as_float": ("models.parquet", lambda t: t.assign(model_id=t["model_id"] + 0.5)),
    "unknown_status": ("models.parquet", lambda t: t.assign(status="okay")),
    "epoch_as_text": ("metrics.parquet", lambda t: t.assign(epoch=t["epoch"].astype(str))),
    "metrics_rows_dropped": ("metrics.parquet", lambda t: t.iloc[3:]),
    "metrics_rows_repeated": ("metrics.parquet", lambda t: t.iloc[[*range(len(t)), 0]]),
}


@pytest.mark.parametrize("damage", list(TABLE_DAMAGE), ids=list(TABLE_DAMAGE))
def test_bad_tables_are_one_store_error_at_open(tmp_path: Path, damage: str) -> None:
    zoo = copy_zoo(seed_zoo(), tmp_path / "zoo")
    name, edit = TABLE_DAMAGE[damage]
    _edit_table(zoo, name, edit)
    shutil.copystat(zoo / "zoo.json", zoo / name)  # not a commit in progress: fail at once
    with pytest.raises(StoreError, match=name):
        open_zoo(zoo)
    result = _verify(zoo)
    assert result.exit_code == 1 and name in result.output


def test_verify_names_missing_metric_columns(tmp_path: Path) -> None:
    zoo = copy_zoo(seed_zoo(), tmp_path / "zoo")
    _edit_table(zoo, "metrics.parquet", lambda t: t.drop(columns=["gap", "f1_1"]))
    result = _verify(zoo)
    assert result.exit_code == 1 and "gap" in result.output and "f1_1" in result.output


def test_verify_compares_f1_with_the_shards(tmp_path: Path) -> None:
    zoo = copy_zoo(seed_zoo(), tmp_path / "zoo")
    _edit_table(zoo, "metrics.parquet", lambda t: t.assign(f1_0=t["f1_0"] * 0.5))
    result = _verify(zoo)
    assert result.exit_code == 1 and "f1" in result.output


def test_a_shard_holding_other_models_is_refused_on_first_read(tmp_path: Path) -> None:
    """Two same-sized shards swapped: sizes and shapes agree, only the model ids tell."""
    zoo = copy_zoo(seed_zoo(), tmp_path / "zoo")
    with h5py.File(_shard_paths(zoo)[0], "a") as h5:
        h5["model_ids"][:] = h5["model_ids"][:] + 100
    _edit_manifest(zoo, lambda m: m["shards"][0].pop("bytes"))
    opened = open_zoo(zoo)  # verify=False: no checksums, but the ids must still agree
    with pytest.raises(StoreError, match="model ids"):
        opened.weights()


def test_a_shard_of_another_zoo_is_refused(tmp_path: Path) -> None:
    """Same architecture, same ids, same shape: only the spec fingerprint tells them apart."""
    zoo = copy_zoo(seed_zoo(), tmp_path / "zoo")
    other = copy_zoo(seed_zoo(), tmp_path / "other")
    target = _shard_paths(zoo)[0]
    with h5py.File(_shard_paths(other)[0], "a") as h5:
        h5.attrs["spec_fingerprint"] = "0" * 64
    shutil.copy(_shard_paths(other)[0], target)

    def fix(manifest: dict) -> None:  # even with a checksum that matches the foreign file
        manifest["shards"][0].update(sha256=sha256_file(target), bytes=target.stat().st_size)

    _edit_manifest(zoo, fix)
    with pytest.raises(StoreError, match="another zoo"):
        open_zoo(zoo).weights()
    result = _verify(zoo)
    assert result.exit_code == 1 and "another zoo" in result.output


def test_open_waits_for_a_commit_in_progress(tmp_path: Path) -> None:
    """The writer replaces the tables, then the manifest: a reader in between must not fail, and
    sees one committed state (the manifest's), whole."""
    zoo = copy_zoo(seed_zoo(), tmp_path / "zoo")
    full = (zoo / "zoo.json").read_text()
    _edit_manifest(zoo, lambda m: m["shards"].pop())  # the manifest of the previous commit
    time.sleep(0.01)
    for name in ("models.parquet", "metrics.parquet"):  # tables already replaced
        (zoo / name).write_bytes((zoo / name).read_bytes())
    writer = threading.Timer(0.3, lambda: (zoo / "zoo.json").write_text(full))
    writer.start()
    try:
        opened = open_zoo(zoo)
    finally:
        writer.join()
    pending = json.loads(full)["shards"][-1]["models"]  # the shard the old manifest lacks
    assert len(opened) in (len(open_zoo(seed_zoo())), len(open_zoo(seed_zoo())) - pending)
    assert len(opened.metrics) == len(opened) * len(opened.epochs)


@pytest.mark.parametrize("bad", [1.5, "a", [0, 2.5], None], ids=["float", "text", "list", "none"])
def test_weights_refuse_ids_and_epochs_that_are_not_integers(bad) -> None:
    zoo = open_zoo(grid_zoo())
    with pytest.raises(ModelZooError, match="integer"):
        zoo.weights(bad if bad is not None else [object()])
    with pytest.raises(ModelZooError, match="integer"):
        zoo.weights(0, bad if bad is not None else [object()])
    assert np.array_equal(zoo.weights(np.float64(3.0), 2.0), zoo.weights(3, 2))


def test_select_query_must_give_booleans() -> None:
    zoo = open_zoo(grid_zoo())
    with pytest.raises(ModelZooError, match="boolean"):
        zoo.select("lr")


def test_dataset_status_and_epochs_arguments() -> None:
    zoo = open_zoo(synthetic_zoo())
    with pytest.raises(ModelZooError, match="status"):
        ZooDataset(zoo, "all", status="okay")
    assert len(ZooDataset(zoo, "all", epochs=2)) == len(ZooDataset(zoo, "all", epochs=[2]))
    window = ZooDataset(zoo, "all", epochs=[3, 1, 3])
    assert window.epochs == [1, 3] and "1..3" in repr(window)


def test_set_epoch_reaches_persistent_workers() -> None:
    dataset = ZooDataset(open_zoo(grid_zoo()), "all", augment="paper", seed=1)
    loader = DataLoader(dataset, batch_size=16, num_workers=2, persistent_workers=True)

    def run(epoch: int) -> torch.Tensor:
        dataset.set_epoch(epoch)
        return torch.cat([batch["weights"] for batch in loader])

    first, second, again = run(1), run(2), run(1)
    reference = torch.cat([b["weights"] for b in DataLoader(dataset, batch_size=16)])  # epoch 1
    assert torch.equal(first, again) and torch.equal(first, reference)
    assert not torch.equal(first, second)


def test_concurrent_normalisation_writers_do_not_collide(tmp_path: Path) -> None:
    zoo = open_zoo(copy_zoo(grid_zoo(), tmp_path / "zoo"))
    errors: list[BaseException] = []

    def compute(seed: int) -> None:
        try:
            for _ in range(5):
                ZooDataset(zoo, "train", normalize=True, split_seed=seed, cache=False)
        except BaseException as error:
            errors.append(error)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        threads = [threading.Thread(target=compute, args=(seed,)) for seed in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert json.loads((zoo.path / "normalization.json").read_text())["entries"]
    assert not list(zoo.path.glob("*.tmp"))
    assert _verify(zoo.path).exit_code == 0
