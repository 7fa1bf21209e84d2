"""The Zoo API on freshly generated tiny zoos: tables, views, weights, models, data, processes."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from test_zoo_helpers import grid_zoo

import modelzoo
from modelzoo import Zoo, open_zoo
from modelzoo.cli import main
from modelzoo.errors import ModelZooError
from modelzoo.nets import build_model


@pytest.fixture(scope="module")
def zoo() -> Zoo:
    return open_zoo(grid_zoo())


def test_open_describes_the_zoo(zoo: Zoo) -> None:
    assert isinstance(zoo, modelzoo.Zoo) and len(zoo) == 12
    assert zoo.epochs == [0, 1, 2, 3, 4]
    assert [s.name for s in zoo.layout] == ["fc1.weight", "fc2.weight"] and zoo.parameters == 100
    text = repr(zoo)
    assert "grid_tetris" in text and "12 models" in text and "tetris_mlp" in text and "0..4" in text
    models = zoo.models
    assert models["seed"].dtype == np.int64 and models["lr"].dtype == np.float64
    assert set(models["activation"]) == {"tanh", "relu"} and set(models["status"]) == {"ok"}
    assert len(zoo.metrics) == 12 * 5 and {"f1_0", "f1_3", "gap", "test_acc"} <= set(zoo.metrics)
    assert zoo.factors()["activation"] == ["relu", "tanh"]


def test_models_frame_is_a_copy(zoo: Zoo) -> None:
    frame = zoo.models
    frame["seed"] = -1
    assert (zoo.models["seed"] > 0).all()


def test_select_by_equality_query_callable_and_mask(zoo: Zoo) -> None:
    tanh = zoo.select(activation="tanh", status="ok")
    assert len(tanh) == 6 and set(tanh.models["activation"]) == {"tanh"}
    assert tanh._core is zoo._core  # views share tables and readers
    assert len(zoo.select(seed=[1, 2])) == 4
    assert len(zoo.select("activation == 'relu' and seed > 3")) == 3
    threshold = 5  # noqa: F841 - read by the query string below
    assert len(zoo.select("seed >= @threshold")) == 4  # query strings see local variables
    assert len(zoo.select(lambda m: m["seed"] % 2 == 0)) == 6
    assert len(zoo.select(zoo.models["seed"].to_numpy() == 1)) == 2
    assert len(zoo.select(seed=lambda s: s >= 5).select(activation="relu")) == 2
    best = zoo.select(f"test_acc >= {zoo.models['test_acc'].median()}")
    assert 0 < len(best) < 12
    at_zero = zoo.select("test_acc >= 0", epoch=0)
    assert len(at_zero) == 12
    with pytest.raises(ModelZooError, match="unknown column 'activaton'"):
        zoo.select(activaton="tanh")
    with pytest.raises(ModelZooError, match="select"):
        zoo.select("nonsense ===")
    with pytest.raises(ModelZooError, match="not stored"):
        zoo.select(epoch=99)


def test_getitem_views_and_unknown_ids(zoo: Zoo) -> None:
    view = zoo[[3, 1]]
    assert view.model_ids.tolist() == [1, 3] and 3 in view and 5 not in view
    assert len(zoo[4]) == 1
    with pytest.raises(ModelZooError, match="not in this zoo"):
        zoo[[1, 999]]
    with pytest.raises(ModelZooError, match="not in this zoo"):
        view.weights(5)


def test_weights_match_raw_hdf5(zoo: Zoo) -> None:
    models = zoo.models.set_index("model_id")
    everything = zoo.weights()
    assert everything.shape == (12, 5, 100) and everything.dtype == np.float32
    for model_id in (0, 7, 11):
        shard, row = models.loc[model_id, ["shard", "row"]]
        with h5py.File(zoo.path / shard, "r") as h5:
            raw = h5["weights"][row]
        np.testing.assert_array_equal(everything[model_id], raw)
        np.testing.assert_array_equal(zoo.weights(model_id), raw)
        np.testing.assert_array_equal(zoo.weights(model_id, 3), raw[3])
    picked = zoo.weights([11, 0, 7], [4, 0])
    np.testing.assert_array_equal(picked, everything[[11, 0, 7]][:, [4, 0]])
    pairs = zoo.read_pairs(np.array([5, 5, 0]), np.array([2, 2, 4]))
    np.testing.assert_array_equal(pairs, everything[[5, 5, 0], [2, 2, 4]])
    with pytest.raises(ModelZooError, match="epoch \\[7\\] is not stored"):
        zoo.weights(0, 7)


def test_state_dict_fits_the_architecture(zoo: Zoo) -> None:
    state = zoo.state_dict(2, 4)
    net = build_model("tetris_mlp", (1, 4, 4), 4)
    net.load_state_dict(state)
    assert torch.equal(
        torch.cat([v.reshape(-1) for v in state.values()]), torch.from_numpy(zoo.weights(2, 4))
    )


def test_relu_models_are_rebuilt_with_relu(zoo: Zoo) -> None:
    relu = zoo.select(activation="relu").model_ids[0]
    assert "relu" in repr(zoo.model(relu, 4)) and "tanh" not in repr(zoo.model(relu, 4))


def test_three_line_reevaluation(zoo: Zoo) -> None:
    test = zoo.data("test")
    accuracy = (zoo.model(3, 4)(test.images).argmax(1) == test.labels).double().mean().item()
    assert accuracy == zoo.metrics.set_index(["model_id", "epoch"]).loc[(3, 4), "test_acc"]
    assert zoo.evaluate(3, 4)["test_acc"] == accuracy
    assert len(zoo.data("train")) > 0
    with pytest.raises(ModelZooError, match="no validation split"):
        zoo.data("validation")
    with pytest.raises(ModelZooError, match="unknown split"):
        zoo.data("dev")


def _child_read(zoo: Zoo, queue) -> None:
    queue.put(zoo.weights([1, 10], [0, 4]).sum())


def test_pickles_and_forks_with_open_handles(zoo: Zoo) -> None:
    expected = zoo.weights([1, 10], [0, 4]).sum()  # handles are open in this process now
    clone = pickle.loads(pickle.dumps(zoo.select(seed=[2, 5])))
    assert clone._core.reader._open == {} and clone.weights([1, 10], [0, 4]).sum() == expected
    for method in ("fork",):  # spawn pickles the zoo: covered by pickle.loads above
        context = multiprocessing.get_context(method)
        queue = context.Queue()
        child = context.Process(target=_child_read, args=(zoo, queue))
        child.start()
        assert queue.get(timeout=60) == expected
        child.join(timeout=60)
        assert child.exitcode == 0


def test_concurrent_readers(zoo: Zoo) -> None:
    other = open_zoo(zoo.path)
    expected = zoo.weights()
    results, errors = [], []

    def read(which: Zoo) -> None:
        try:
            for _ in range(20):
                results.append(np.array_equal(which.weights(), expected))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=read, args=(z,)) for z in (zoo, other, zoo, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and all(results) and len(results) == 80
    other.close()


def test_info_command(zoo: Zoo) -> None:
    result = CliRunner().invoke(main, ["info", str(zoo.path)])
    assert result.exit_code == 0, result.output
    assert (
        "grid_tetris" in result.output
        and "activation" in result.output
        and "relu, tanh" in result.output
    )
    assert "ok 12" in result.output and "test accuracy" in result.output
    result = CliRunner().invoke(main, ["info", "--json", str(zoo.path)])
    summary = pd.read_json(__import__("io").StringIO(result.output), typ="series")
    assert summary["models"] == 12 and len(summary["test_acc_per_epoch"]) == 5
    result = CliRunner().invoke(main, ["info", str(Path(zoo.path) / "nowhere")])
    assert result.exit_code == 2 and "error:" in result.output


def test_hdf5_fallback_reads_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelzoo.store import reader

    direct = open_zoo(grid_zoo())
    expected = direct.weights()  # opens every shard with the direct reader
    monkeypatch.setattr(reader, "_vector_offsets", lambda weights: None)
    through_h5py = open_zoo(grid_zoo())
    assert (
        through_h5py._core.reader.shard(0).offsets is None
        and direct._core.reader.shard(0).offsets is not None
    )
    np.testing.assert_array_equal(through_h5py.weights(), expected)
    ids, epochs = np.array([11, 0, 0, 6, 3]), np.array([4, 4, 0, 2, 2])
    np.testing.assert_array_equal(
        through_h5py.read_pairs(ids, epochs), direct.read_pairs(ids, epochs)
    )
