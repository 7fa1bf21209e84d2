"""Import of other zoos' layouts, from fixtures written here in the real on-disk formats.

Ray Tune layouts come two ways. A real Ray Tune experiment (``tune.run`` of a Trainable in the
Model Zoos generators' style: line 0 of result.json the untrained model, a torch state dict in
each checkpoint_XXXXXX/checkpoints) is imported as Tune wrote it. A second experiment is written
byte for byte as Tune lays it out, to hold what a clean run does not: an unreadable checkpoint and
a params.pkl that would create a file if anyone unpickled it. Models are trained with plain torch;
their accuracy is measured with plain torch, and the imported zoo must give back the same weights
and, through zoo.model(...), the same test accuracy.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

os.environ.setdefault("TQDM_DISABLE", "1")
EPOCHS = 2


def _data():
    from modelzoo.data import DataConfig, load_training_data

    return load_training_data(DataConfig.from_section({"name": "digits"}))


def _accuracy(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net.eval()(images).argmax(1) == labels).float().mean())


def _train(seed: int, data):
    """A cnn_tiny on digits with plain torch SGD: its state dict and accuracy after each epoch."""
    from modelzoo.nets import build_model

    torch.manual_seed(seed)
    shape, classes = tuple(data.train.images.shape[1:]), 10
    net = build_model("cnn_tiny", shape, classes, activation="tanh")
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1)
    history, train = [], len(data.train.labels) // 3  # a third of the train split keeps it fast
    for epoch in range(EPOCHS + 1):
        if epoch:
            net.train()
            order = torch.randperm(
                train, generator=torch.Generator().manual_seed(seed * 100 + epoch)
            )
            for start in range(0, len(order), 32):
                batch = order[start : start + 32]
                optimiser.zero_grad()
                loss = torch.nn.functional.cross_entropy(
                    net(data.train.images[batch]), data.train.labels[batch]
                )
                loss.backward()
                optimiser.step()
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        record = {"epoch": epoch, "train_acc": _accuracy(net, data.train.images, data.train.labels),
                  "test_acc": _accuracy(net, data.test.images, data.test.labels)}  # fmt: skip
        history.append((state, record))
    return history


class _Trap:
    def __reduce__(self):
        return (Path.write_text, (Path(os.environ["PUB_TRAP"]), "unpickled!"))


@pytest.fixture(scope="module")
def ray_experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("raytune")
    os.environ["PUB_TRAP"] = str(root / "TRAPPED")
    data = _data()
    experiment = root / "experiment"
    truth = {}
    for trial_index, seed in enumerate((11, 12, 13)):
        trial = (
            experiment / f"NN_tune_trainable_{trial_index:05d}_{trial_index}_seed={seed}_2026-12-02"
        )
        trial.mkdir(parents=True)
        params = {"model::type": "cnn_tiny", "model::nlin": "tanh", "model::dropout": 0.0,
                  "optim::optimizer": "sgd", "optim::lr": 0.1, "seed": seed,
                  "training::batchsize": 32, "training::epochs_train": EPOCHS}  # fmt: skip
        (trial / "params.json").write_text(json.dumps(params, indent=2))
        (trial / "params.pkl").write_bytes(pickle.dumps(_Trap()))
        history = _train(seed, data)
        lines = []
        for state, record in history:
            e = record["epoch"]
            folder = trial / f"checkpoint_{e:06d}"
            folder.mkdir()
            torch.save(state, folder / "checkpoints")
            (folder / ".is_checkpoint").write_text("")
            lines.append(json.dumps({**record, "training_iteration": e + 1, "trial_id": f"{trial_index:05d}",
                                     "time_this_iter_s": 0.1, "done": e == EPOCHS}))  # fmt: skip
        (trial / "result.json").write_text("\n".join(lines) + "\n")
        truth[seed] = history
    broken = (
        experiment
        / "NN_tune_trainable_00002_2_seed=13_2026-12-02"
        / "checkpoint_000001"
        / "checkpoints"
    )
    broken.write_bytes(b"not a torch file")
    out = root / "imported"
    from modelzoo.publish.importers.ray_tune import import_ray_tune

    import_ray_tune(experiment, out, "digits", None)
    return {"root": root, "out": out, "truth": truth, "data": data}


def test_ray_tune_import_keeps_every_number(ray_experiment):
    from modelzoo.zoo import open_zoo

    zoo = open_zoo(ray_experiment["out"])
    assert zoo.architecture == "cnn_tiny"  # matched by the state dict's shapes
    assert zoo.epochs == list(range(EPOCHS + 1))
    models = zoo.models.set_index("seed")
    assert models.loc[13, "status"] == "failed" and "checkpoint_000001" in models.loc[13, "error"]
    assert set(models.loc[[11, 12], "status"]) == {"ok"}
    assert models.loc[11, "model_type"] == "cnn_tiny" and models.loc[11, "lr"] == 0.1
    data = ray_experiment["data"]
    for seed in (11, 12):
        model_id = int(models.loc[seed, "model_id"])
        for state, record in ray_experiment["truth"][seed]:
            epoch = record["epoch"]
            flat = np.concatenate([v.numpy().ravel() for v in state.values()])
            np.testing.assert_array_equal(zoo.weights(model_id, epoch), flat)
            net = zoo.model(model_id, epoch)
            assert _accuracy(net, data.test.images, data.test.labels) == record["test_acc"]
            row = zoo.metrics.query(f"model_id == {model_id} and epoch == {epoch}").iloc[0]
            assert row["test_acc"] == record["test_acc"]
            assert row["train_acc"] == record["train_acc"]
    assert not (ray_experiment["root"] / "TRAPPED").exists()  # params.pkl never unpickled


def test_ray_tune_import_verifies(ray_experiment):
    from modelzoo.store.verify import verify_zoo

    report = verify_zoo(ray_experiment["out"])
    assert report.ok, report.problems


def test_state_dicts_import(tmp_path, ray_experiment):
    from safetensors.torch import save_file

    from modelzoo.publish.importers.state_dicts import import_state_dicts
    from modelzoo.zoo import open_zoo

    data = ray_experiment["data"]
    rows, truth = [], {}
    for name, seed in (("a", 1), ("b", 2)):
        history = _train(seed, data)[::EPOCHS]  # epochs 0 and EPOCHS
        truth[name] = history
        for state, record in history:
            file = f"{name}_{record['epoch']}" + (".safetensors" if name == "a" else ".pt")
            if name == "a":
                save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / file))
            else:
                torch.save(state, tmp_path / file)
            rows.append({"file": file, "model": name, "epoch": record["epoch"], "seed": seed,
                         "test_acc": record["test_acc"], "width": 8})  # fmt: skip
    rows.append(
        {"file": "missing.pt", "model": "c", "epoch": 0, "seed": 3, "test_acc": 0.5, "width": 4}
    )
    pd.DataFrame(rows).to_csv(tmp_path / "properties.csv", index=False)
    out = import_state_dicts(tmp_path, tmp_path / "out" / "sd_zoo", "digits", "cnn_tiny")
    zoo = open_zoo(out)
    models = zoo.models.set_index("seed")
    assert models.loc[3, "status"] == "failed" and "missing.pt" in models.loc[3, "error"]
    assert models.loc[1, "width"] == 8
    for name, seed in (("a", 1), ("b", 2)):
        model_id = int(models.loc[seed, "model_id"])
        for state, record in truth[name]:
            flat = np.concatenate([v.numpy().ravel() for v in state.values()])
            np.testing.assert_array_equal(zoo.weights(model_id, record["epoch"]), flat)
            net = zoo.model(model_id, record["epoch"])
            assert _accuracy(net, data.test.images, data.test.labels) == record["test_acc"]


def test_malformed_trials_are_recorded_as_failed_not_fatal(tmp_path, ray_experiment):
    """Each damaged copy of a good trial becomes a failed model with its reason; the import goes
    on. The Model Zoos generators' `leakyrelu` is read as modelzoo's `leaky_relu`."""
    import shutil

    from modelzoo.publish.importers.ray_tune import import_ray_tune

    good = sorted((ray_experiment["root"] / "experiment").iterdir())[0]
    experiment = tmp_path / "experiment"

    def copy(name, params=None, edit=None):
        trial = experiment / name
        shutil.copytree(good, trial)
        if params is not None:
            (trial / "params.json").write_text(json.dumps(params))
        if edit is not None:
            lines = (trial / "result.json").read_text().splitlines()
            (trial / "result.json").write_text("\n".join(edit(json.loads(x)) for x in lines))
        return trial

    base = json.loads((good / "params.json").read_text())
    copy("a_good")
    copy("b_list_params", params=[1, 2])
    copy("c_epoch_text", edit=lambda r: json.dumps({**r, "epoch": "one"}))
    copy("d_acc_text", edit=lambda r: json.dumps({**r, "test_acc": "high"}))
    copy("e_leakyrelu", params={**base, "model::nlin": "leakyrelu"})
    copy("f_unknown_activation", params={**base, "model::nlin": "mish"})
    from modelzoo import open_zoo

    zoo = open_zoo(import_ray_tune(experiment, tmp_path / "out", "digits", None))
    models = zoo.models.sort_values("model_id").reset_index(drop=True)
    status = dict(zip(["a", "b", "c", "d", "e", "f"], models["status"]))
    errors = dict(zip(["a", "b", "c", "d", "e", "f"], models["error"]))
    assert status == {"a": "ok", "b": "failed", "c": "failed", "d": "failed", "e": "ok",
                      "f": "failed"}, errors  # fmt: skip
    assert "must be a JSON object" in errors["b"] and "invalid literal" in errors["c"]
    assert "'high' is not a number" in errors["d"] and "'mish' is not one modelzoo" in errors["f"]
    assert models.loc[4, "activation"] == "leaky_relu"


def test_import_cli_bad_input(tmp_path, ray_experiment):
    from modelzoo.cli import ZooGroup
    from modelzoo.publish.cli import import_zoo

    group = ZooGroup(commands={"import": import_zoo})
    runner = CliRunner()
    cases = [
        [str(tmp_path / "none"), "--from", "ray-tune", "--dataset", "digits", "--out", str(tmp_path / "o")],
        [str(tmp_path), "--from", "state-dicts", "--dataset", "digits", "--out", str(tmp_path / "o")],
        [str(ray_experiment["root"] / "experiment"), "--from", "ray-tune", "--dataset", "digits",
         "--out", str(ray_experiment["out"])],  # exists
        [str(ray_experiment["root"] / "experiment"), "--from", "ray-tune", "--dataset", "mnist",
         "--out", str(tmp_path / "o")],  # no architecture with these shapes on mnist
        [str(ray_experiment["root"] / "experiment"), "--from", "ray-tune", "--out",
         str(tmp_path / "o")],  # no --dataset
    ]  # fmt: skip
    for args in cases:
        result = runner.invoke(group, ["import", *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.output.count("\n") == 1 and result.output.startswith("error: "), result.output
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- a real Ray Tune run


def _zoo_trainable():
    """A Trainable as the Model Zoos generators write one: step 0 reports the untrained model,
    every later step trains one epoch; each step is checkpointed as a torch state dict."""
    from ray import tune

    class ZooTrainable(tune.Trainable):
        def setup(self, config):
            from modelzoo.nets import build_model

            torch.manual_seed(config["seed"])
            self.data = _data()
            self.net = build_model("cnn_tiny", (1, 8, 8), 10, activation=config["model::nlin"])
            self.optimiser = torch.optim.SGD(self.net.parameters(), lr=config["optim::lr"])
            self.epoch, self.seed = 0, config["seed"]

        def step(self):
            train = self.data.train
            if self.epoch:
                self.net.train()
                order = torch.randperm(len(train.labels) // 3,
                                       generator=torch.Generator().manual_seed(self.seed))  # fmt: skip
                for start in range(0, len(order), 32):
                    batch = order[start : start + 32]
                    self.optimiser.zero_grad()
                    loss = torch.nn.functional.cross_entropy(self.net(train.images[batch]),
                                                             train.labels[batch])  # fmt: skip
                    loss.backward()
                    self.optimiser.step()
            test = self.data.test
            record = {"epoch": self.epoch, "test_acc": _accuracy(self.net, test.images, test.labels),
                      "train_acc": _accuracy(self.net, train.images, train.labels)}  # fmt: skip
            self.epoch += 1
            return record

        def save_checkpoint(self, checkpoint_dir):
            torch.save(self.net.state_dict(), os.path.join(checkpoint_dir, "checkpoints"))

        def load_checkpoint(self, checkpoint_dir):
            self.net.load_state_dict(
                torch.load(os.path.join(checkpoint_dir, "checkpoints"), weights_only=True)
            )

    return ZooTrainable


@pytest.fixture(scope="module")
def tune_experiment(tmp_path_factory):
    """Two models trained by ``tune.run`` (skipped only where ray.tune cannot be imported)."""
    pytest.importorskip("ray.tune", reason="ray.tune does not import (it needs pydantic)")
    import ray
    from ray import tune

    root = tmp_path_factory.mktemp("tune")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    this = sys.modules[__name__]  # tests/ is not importable on Ray's workers: ship it by value
    ray.cloudpickle.register_pickle_by_value(this)
    try:
        config = {"model::type": "cnn_tiny", "model::nlin": "tanh", "optim::optimizer": "sgd",
                  "optim::lr": 0.1, "seed": tune.grid_search([21, 22]),
                  "training::batchsize": 32}  # fmt: skip
        tune.run(_zoo_trainable(), name="zoo", storage_path=str(root), config=config,
                 stop={"training_iteration": EPOCHS + 1}, verbose=0,
                 checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=1),
                 resources_per_trial={"cpu": 1})  # fmt: skip
    finally:
        ray.cloudpickle.unregister_pickle_by_value(this)
        if started:
            ray.shutdown()
    out = root / "imported"
    from modelzoo.publish.importers.ray_tune import import_ray_tune

    import_ray_tune(root / "zoo", out, "digits", None)
    return {"experiment": root / "zoo", "out": out}


def test_a_real_ray_tune_run_imports_with_every_number(tune_experiment):
    from modelzoo.zoo import open_zoo

    trials = sorted(p.parent for p in tune_experiment["experiment"].rglob("params.json"))
    assert len(trials) == 2 and all((t / "params.pkl").exists() for t in trials)  # Tune's files
    zoo = open_zoo(tune_experiment["out"])
    assert zoo.architecture == "cnn_tiny" and zoo.epochs == list(range(EPOCHS + 1))
    models = zoo.models.set_index("seed")
    assert sorted(models.index) == [21, 22] and set(models["status"]) == {"ok"}
    test = zoo.data("test")
    for trial in trials:
        seed = json.loads((trial / "params.json").read_text())["seed"]
        model_id = int(models.loc[seed, "model_id"])
        results = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        assert [r["epoch"] for r in results] == list(range(EPOCHS + 1))
        for record in results:
            epoch = record["epoch"]
            state = torch.load(trial / f"checkpoint_{epoch:06d}" / "checkpoints", weights_only=True)
            flat = np.concatenate([v.numpy().ravel() for v in state.values()])
            np.testing.assert_array_equal(zoo.weights(model_id, epoch), flat)
            assert _accuracy(zoo.model(model_id, epoch), test.images, test.labels) == (
                record["test_acc"]
            )
        assert results[-1]["test_acc"] > results[0]["test_acc"]  # it trained
