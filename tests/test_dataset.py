"""ZooDataset: model-level splits without leakage, epoch windows, targets, tokens, normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_zoo_helpers import copy_zoo, digits_zoo, grid_zoo
from torch.utils.data import DataLoader

from modelzoo import Zoo, ZooDataset, open_zoo
from modelzoo import dataset as ds
from modelzoo.errors import ModelZooError
from modelzoo.store import format as fmt
from modelzoo.store.verify import verify_zoo
from modelzoo.tokens import WeightStructure


@pytest.fixture(scope="module")
def zoo() -> Zoo:
    return open_zoo(grid_zoo())


@pytest.mark.parametrize("fractions", [(0.7, 0.15, 0.15), (0.8, 0.05, 0.15), (0.5, 0.0, 0.5)])
def test_splits_partition_the_models(zoo: Zoo, fractions) -> None:
    parts = zoo.split(fractions, seed=3)
    ids = np.concatenate(list(parts.values()))
    assert sorted(ids.tolist()) == zoo.model_ids.tolist()  # every model once: no leakage
    assert len(parts["train"]) == round(fractions[0] * 12) and len(parts["val"]) == round(
        fractions[1] * 12
    )
    assert {k: v.tolist() for k, v in zoo.split(fractions, seed=3).items()} == {
        k: v.tolist() for k, v in parts.items()
    }
    assert zoo.split(fractions, seed=4)["train"].tolist() != parts["train"].tolist()


def test_split_of_a_model_does_not_depend_on_filters(zoo: Zoo) -> None:
    full = zoo.split()
    for name, ids in zoo.select(activation="relu").split().items():
        assert set(ids) <= set(full[name])
    with pytest.raises(ModelZooError, match="three non-negative fractions"):
        zoo.split((0.9, 0.2, 0.1))


def test_datasets_do_not_leak_between_splits(zoo: Zoo) -> None:
    epochs = [2, 3, 4]
    sets = {name: ZooDataset(zoo, name, epochs=epochs, splits=(0.5, 0.25, 0.25), split_seed=1)
            for name in ("train", "val", "test")}  # fmt: skip
    models = {name: set(d.samples["model_id"]) for name, d in sets.items()}
    assert not models["train"] & models["val"] and not models["train"] & models["test"]
    assert not models["val"] & models["test"]
    assert set().union(*models.values()) == set(zoo.model_ids)
    for d in sets.values():  # every epoch of a model sits in the model's split
        counts = d.samples.groupby("model_id")["epoch"].apply(sorted)
        assert all(epochs_of == epochs for epochs_of in counts)
        assert len(d) == 3 * len(d.model_ids)
    everything = ZooDataset(zoo, "all")
    assert len(everything) == 12 * 5


def test_epoch_window_and_status_filter(zoo: Zoo) -> None:
    window = ZooDataset(zoo, "all", epochs=range(1, 3))
    assert set(window.samples["epoch"]) == {1, 2}
    with pytest.raises(ModelZooError, match="not stored"):
        ZooDataset(zoo, epochs=[21, 25])
    assert len(ZooDataset(zoo, "all", status="diverged")) == 0
    assert len(ZooDataset(zoo, "all", status=None)) == len(ZooDataset(zoo, "all", status=["ok", "failed"]))
    assert len(ZooDataset(zoo.select(activation="tanh"), "all")) == 6 * 5


def test_samples_hold_the_stored_weights_and_targets(zoo: Zoo) -> None:
    data = ZooDataset(zoo,
        "all", epochs=[0, 4], targets=["test_acc", "gap", "epoch", "f1", "f1_2", "lr", "activation"]
    )
    metrics = zoo.metrics.set_index(["model_id", "epoch"])
    assert data.categories == {"activation": ["relu", "tanh"]}
    for index in (0, 5, len(data) - 1):
        sample = data[index]
        model_id, epoch = sample["model_id"], sample["epoch"]
        np.testing.assert_array_equal(sample["weights"].numpy(), zoo.weights(model_id, epoch))
        row = metrics.loc[(model_id, epoch)]
        targets = sample["targets"]
        assert targets["test_acc"].item() == pytest.approx(row["test_acc"])
        assert (
            targets["gap"].item() == pytest.approx(row["gap"]) and targets["epoch"].item() == epoch
        )
        assert targets["f1"].shape == (4,) and targets["f1_2"].item() == pytest.approx(row["f1_2"])
        activation = zoo.models.set_index("model_id").loc[model_id, "activation"]
        assert data.categories["activation"][targets["activation"].item()] == activation
        assert targets["activation"].dtype == torch.int64 and targets["lr"].item() == pytest.approx(
            1e-2
        )
    with pytest.raises(ModelZooError, match="unknown target 'accuracy'"):
        ZooDataset(zoo, targets=["accuracy"])


def test_dataloader_batches_cached_and_streamed_alike(zoo: Zoo) -> None:
    cached = ZooDataset(zoo, "train", targets=["test_acc"], cache=True)
    streamed = ZooDataset(zoo, "train", targets=["test_acc"], cache=False)
    assert cached._cache is not None and streamed._cache is None
    a = next(iter(DataLoader(cached, batch_size=16)))
    b = next(
        iter(DataLoader(streamed, batch_size=16, num_workers=2))
    )  # workers open HDF5 themselves
    assert torch.equal(a["weights"], b["weights"]) and torch.equal(
        a["targets"]["test_acc"], b["targets"]["test_acc"]
    )
    assert a["weights"].shape == (16, 100) and a["model_id"].dtype == torch.int64


def test_tokens_round_trip_exactly() -> None:
    zoo = open_zoo(digits_zoo())
    data = ZooDataset(zoo, "all", representation="tokens")
    structure = WeightStructure.of(zoo)
    assert structure.token_shape == (8 + 8 + 16 + 10, 33)  # conv2: 8 channels x 2x2 + bias
    sample = data[3]
    assert sample["tokens"].shape == (42, 33) and sample["mask"].sum() == zoo.parameters
    assert sample["positions"][:, 0].tolist() == [0] * 8 + [1] * 8 + [2] * 16 + [3] * 10
    assert sample["positions"][8:16, 1].tolist() == list(range(8))
    flat = zoo.weights(sample["model_id"], sample["epoch"])
    np.testing.assert_array_equal(data.detokenize(sample["tokens"]).numpy(), flat)
    np.testing.assert_array_equal(structure.detokenize(structure.tokenize(flat)), flat)
    conv1 = zoo.state_dict(sample["model_id"], sample["epoch"])
    np.testing.assert_array_equal(
        sample["tokens"][2, :10].numpy(),
        np.append(conv1["conv1.weight"][2].reshape(-1), conv1["conv1.bias"][2]),
    )
    assert (sample["tokens"][~sample["mask"]] == 0).all()
    batch = next(iter(DataLoader(data, batch_size=4)))
    assert batch["tokens"].shape == (4, 42, 33) and batch["mask"].shape == (4, 42, 33)
    np.testing.assert_array_equal(data.detokenize(batch["tokens"].numpy())[0], zoo.weights(0, 0))


def test_layerwise_normalisation_is_stored_beside_the_zoo(tmp_path, monkeypatch) -> None:
    zoo = open_zoo(copy_zoo(digits_zoo(), tmp_path / "zoo"))
    train = ZooDataset(zoo, "train", epochs=[1, 2], normalize=True)
    stats_file = zoo.path / fmt.NORMALIZATION_FILE
    document = json.loads(stats_file.read_text())
    (entry,) = document["entries"].values()
    assert set(entry["layers"]) == {"conv1", "conv2", "fc1", "fc2"} and entry["epochs"] == [1, 2]
    normalised = train.weights(np.arange(len(train)))
    for _, slots in __import__("modelzoo.tokens", fromlist=["x"]).layer_groups(zoo.layout):
        block = np.concatenate([normalised[:, s.offset : s.offset + s.size] for s in slots], axis=1)
        assert abs(block.mean()) < 1e-4 and abs(block.std() - 1) < 1e-3
    raw = zoo.read_pairs(train.samples["model_id"].to_numpy(), train.samples["epoch"].to_numpy())
    np.testing.assert_allclose(train.denormalize(normalised), raw, atol=1e-5)
    np.testing.assert_allclose(
        train.denormalize(torch.from_numpy(normalised)).numpy(), raw, atol=1e-5
    )
    monkeypatch.setattr(ds, "layer_statistics", lambda *a, **k: pytest.fail("recomputed"))
    test = ZooDataset(zoo, "test", epochs=[1, 2], normalize=True)  # same train split: read from file
    assert test.normalizer.stats == train.normalizer.stats
    assert verify_zoo(zoo.path).ok  # the stats file is not part of the checksummed zoo
    monkeypatch.undo()
    ZooDataset(zoo, "train", epochs=[2], normalize=True)
    assert len(json.loads(stats_file.read_text())["entries"]) == 2


def test_bad_arguments(zoo: Zoo) -> None:
    with pytest.raises(ModelZooError, match="unknown split"):
        ZooDataset(zoo, "dev")
    with pytest.raises(ModelZooError, match="unknown representation"):
        ZooDataset(zoo, representation="graph")
    with pytest.raises(IndexError):
        ZooDataset(zoo, "train")[10_000]
    assert "train" in repr(ZooDataset(zoo, "train"))


def test_splits_do_not_move_when_the_zoo_grows(tmp_path) -> None:
    from modelzoo import open_zoo
    from modelzoo.run import generate
    from modelzoo.spec import load_spec

    spec = ["training.epochs=1", "seeds.range=[1, 40]"]
    generate(load_spec("tetris_seed", spec), tmp_path, executor="local", limit=17)
    partial = open_zoo(tmp_path / "tetris_seed").split()
    generate(load_spec("tetris_seed", spec), tmp_path, executor="local")
    full = open_zoo(tmp_path / "tetris_seed").split()
    assert sum(len(ids) for ids in partial.values()) == 17
    for name in ("train", "val", "test"):
        assert set(partial[name]) <= set(full[name]), name
    assert [len(full[name]) for name in ("train", "val", "test")] == [28, 6, 6]
