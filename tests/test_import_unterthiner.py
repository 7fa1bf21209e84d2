"""``--from unterthiner``, from a Small CNN Zoo folder written here in the zoo's on-disk format.

Networks of the zoo's architecture are trained with plain torch on the digits set (resized to
28x28, scaled to [-1, 1] as the zoo's training script scales its images), then written as the zoo
ships them: every checkpoint a row of weights.npy in TensorFlow's order (per layer the bias, then
the kernel: HWIO for convolutions, [in, out] for the dense layer), metrics.csv.gz with the zoo's
columns (rows shuffled), layout.csv with varname/start_idx/end_idx/shape. The imported zoo must
give back each torch model's own weights and, through ``zoo.model(...)``, its own test accuracy;
a numpy forward pass in TensorFlow's conventions (NHWC images, HWIO kernels, "valid" stride-2
convolutions, global average pooling) on the written arrays checks that the fixture really is in
TensorFlow's order, independently of the importer.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

os.environ.setdefault("TQDM_DISABLE", "1")
SECTION = {"name": "digits", "resize": 28, "normalize": {"mean": [0.5], "std": [0.5]}}
LAYERS = ("sequential/conv2d", "sequential/conv2d_1", "sequential/conv2d_2", "sequential/dense")
# modeldir, activation, optimizer, stored steps, what the importer must make of it
MODELS = [
    ("runs/0001", "relu", "adam", (0, 1, 2), "ok"),
    ("runs/0002", "tanh", "sgd", (0, 1, 2), "ok"),
    ("runs/0003", "relu", "rmsprop", (0, 2), "ok"),  # a crashed run: checkpoint 1 missing
    ("runs/0004", "selu", "adam", (0, 1, 2), "failed"),  # an activation modelzoo cannot build
    ("runs/0005", "relu", "sgd", (0, 1, 2), "diverged"),  # NaN weights at step 2
    ("runs/0006", "tanh", "adam", (0, 1, 1), "failed"),  # a step listed twice
]


def _data():
    from modelzoo.data import DataConfig, load_training_data

    return load_training_data(DataConfig.from_section(SECTION))


def _accuracy(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net.eval()(images).argmax(1) == labels).float().mean())


def _train(seed: int, activation: str, data) -> list[tuple[dict, dict]]:
    """(state dict, metrics) after epochs 0, 1, 2 of plain torch Adam."""
    from modelzoo.nets import build_model

    torch.manual_seed(seed)
    net = build_model("cnn_unterthiner", (1, 28, 28), 10, activation=activation)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    history, train = [], len(data.train.labels)
    for epoch in range(3):
        if epoch:
            net.train()
            order = torch.randperm(train, generator=torch.Generator().manual_seed(seed + epoch))
            for start in range(0, train, 32):
                batch = order[start : start + 32]
                optimiser.zero_grad()
                torch.nn.functional.cross_entropy(
                    net(data.train.images[batch]), data.train.labels[batch]
                ).backward()
                optimiser.step()
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        metrics = {"test_accuracy": _accuracy(net, data.test.images, data.test.labels),
                   "train_accuracy": _accuracy(net, data.train.images, data.train.labels)}  # fmt: skip
        history.append((state, metrics))
    return history


def _tf_tensors(state: dict) -> list[tuple[str, np.ndarray]]:
    """The state dict as the zoo's TensorFlow variables, in its flat order (bias, then kernel)."""
    out = []
    for layer, module in zip(LAYERS, ("conv1", "conv2", "conv3", "fc1")):
        weight = state[f"{module}.weight"].numpy()
        kernel = weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight.T  # HWIO / [in, out]
        out += [(f"{layer}/bias:0", state[f"{module}.bias"].numpy()), (f"{layer}/kernel:0", kernel)]
    return out


def _write_zoo(folder: Path, rows: list[tuple[dict, dict]], truth_states: list) -> None:
    folder.mkdir(parents=True)
    layout, start = [], 0
    for name, array in _tf_tensors(truth_states[0]):
        layout.append({"varname": name, "start_idx": start, "end_idx": start + array.size,
                       "shape": str(tuple(array.shape))})  # fmt: skip
        start += array.size
    pd.DataFrame(layout).to_csv(folder / "layout.csv", index=False)
    vectors = [np.concatenate([a.ravel() for _, a in _tf_tensors(s)]) for s in truth_states]
    np.save(folder / "weights.npy", np.stack(vectors).astype(np.float32))
    pd.DataFrame(rows).to_csv(folder / "metrics.csv.gz", index=False, compression="gzip")


@pytest.fixture(scope="module")
def small_cnn_zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("smallcnnzoo")
    data = _data()
    rows, states, truth = [], [], {}
    for number, (modeldir, activation, optimizer, steps, _) in enumerate(MODELS):
        history = _train(number, "relu" if activation == "selu" else activation, data)
        truth[modeldir] = {step: history[step] for step in set(steps)}
        for step in steps:
            state, metrics = history[step]
            if modeldir == "runs/0005" and step == 2:
                state = {k: v.clone().fill_(float("nan")) if k == "conv2.weight" else v
                         for k, v in state.items()}  # fmt: skip
            states.append(state)
            rows.append({"config.activation": activation, "config.b_init": "zeros",
                         "config.dataset": "mnist", "config.dnn_architecture": "cnn",
                         "config.dropout": 0.0, "config.epochs": 2, "config.init_std": 0.05,
                         "config.l2reg": 1e-4 * (number + 1), "config.learning_rate": 0.1,
                         "config.num_layers": 3, "config.num_units": 16,
                         "config.optimizer": optimizer, "config.random_seed": 42,
                         "config.train_fraction": 0.5, "config.w_init": "he_normal",
                         "modeldir": modeldir, "step": step, **metrics,
                         "test_loss": 1.0 + step, "train_loss": 2.0 + step})  # fmt: skip
    order = np.random.default_rng(0).permutation(len(rows))  # checkpoints need not be grouped
    source = root / "mnist"
    _write_zoo(source, [rows[i] for i in order], [states[i] for i in order])
    out = root / "imported"
    result = _cli(source, out)
    assert result.exit_code == 0, result.output
    return {"root": root, "source": source, "out": out, "truth": truth, "data": data}


def _cli(source: Path, out: Path, *extra: str):
    from modelzoo.cli import ZooGroup
    from modelzoo.publish.cli import import_zoo

    args = ["import", str(source), "--from", "unterthiner", "--out", str(out),
            "--dataset", "digits", "--set", "dataset.resize=28", *extra]  # fmt: skip
    return CliRunner().invoke(ZooGroup(commands={"import": import_zoo}), args)


def _numpy_tf_forward(vector: np.ndarray, layout: pd.DataFrame, images: np.ndarray, act) -> np.ndarray:
    """Logits of the Keras network in TensorFlow's conventions, from a weights.npy row."""
    tensors = {row.varname: vector[row.start_idx : row.end_idx].reshape(ast.literal_eval(row.shape))
               for row in layout.itertuples()}  # fmt: skip
    x = images.transpose(0, 2, 3, 1).astype(np.float64)  # NHWC
    for layer in LAYERS[:3]:
        kernel, bias = tensors[f"{layer}/kernel:0"], tensors[f"{layer}/bias:0"]
        windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2]
        x = act(np.einsum("nhwcij,ijco->nhwo", windows, kernel) + bias)  # valid, stride 2
    pooled = x.mean(axis=(1, 2))
    return pooled @ tensors[f"{LAYERS[3]}/kernel:0"] + tensors[f"{LAYERS[3]}/bias:0"]


def test_the_fixture_is_in_tensorflow_order(small_cnn_zoo):
    from modelzoo.nets import build_model

    source, data = small_cnn_zoo["source"], small_cnn_zoo["data"]
    layout = pd.read_csv(source / "layout.csv")
    metrics = pd.read_csv(source / "metrics.csv.gz")
    weights = np.load(source / "weights.npy")
    row = int(np.flatnonzero((metrics["modeldir"] == "runs/0002") & (metrics["step"] == 2))[0])
    images = data.test.images[:50]
    logits = _numpy_tf_forward(weights[row], layout, images.numpy(), np.tanh)
    net = build_model("cnn_unterthiner", (1, 28, 28), 10, activation="tanh")
    net.load_state_dict(small_cnn_zoo["truth"]["runs/0002"][2][0])
    with torch.no_grad():
        expected = net.eval()(images).double().numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_import_keeps_every_number(small_cnn_zoo):
    from modelzoo.zoo import open_zoo

    zoo = open_zoo(small_cnn_zoo["out"])
    assert zoo.architecture == "cnn_unterthiner" and zoo.plan.parameters == 4970
    assert zoo.epochs == [0, 1, 2]
    models = zoo.models.set_index("modeldir")
    test = zoo.data("test")
    for modeldir, activation, optimizer, steps, status in MODELS:
        row = models.loc[modeldir]
        assert row["status"] == status, (modeldir, row["error"])
        assert (row["activation"], row["optimizer"], row["init"]) == (activation, optimizer,
                                                                      "he_normal")  # fmt: skip
        assert row["lr"] == 0.1 and row["seed"] == 42 and row["l2reg"] > 0
        if status != "ok":
            continue
        model_id = int(row["model_id"])
        for step in sorted(set(steps)):
            state, recorded = small_cnn_zoo["truth"][modeldir][step]
            flat = np.concatenate([v.numpy().ravel() for v in state.values()])
            np.testing.assert_array_equal(zoo.weights(model_id, step), flat)
            assert _accuracy(zoo.model(model_id, step), test.images, test.labels) == (
                recorded["test_accuracy"]
            )
            line = zoo.metrics.query(f"model_id == {model_id} and epoch == {step}").iloc[0]
            assert (line["test_acc"], line["train_acc"], line["test_loss"]) == (
                recorded["test_accuracy"], recorded["train_accuracy"], 1.0 + step,
            )  # fmt: skip
    # the manifest's init record describes what the models were drawn with, not a default
    assert zoo.manifest["init"] == {"he_normal": {
        "weights": "as the source zoo drew them (not a modelzoo scheme)",
        "biases": "as the source zoo drew them"}}  # fmt: skip
    crashed = int(models.loc["runs/0003", "model_id"])
    assert np.isnan(zoo.weights(crashed, 1)).all()
    assert "activation 'selu'" in models.loc["runs/0004", "error"]
    assert "step is listed twice" in models.loc["runs/0006", "error"]
    diverged = models.loc["runs/0005"]
    assert diverged["diverged_epoch"] == 2 and "not finite" in diverged["error"]
    state = small_cnn_zoo["truth"]["runs/0005"][1][0]
    np.testing.assert_array_equal(zoo.weights(int(diverged["model_id"]), 1),
                                  np.concatenate([v.numpy().ravel() for v in state.values()]))  # fmt: skip
    assert zoo.manifest["spec"]["dataset"]["normalize"] == {"mean": [0.5], "std": [0.5]}


def test_import_verifies(small_cnn_zoo):
    from modelzoo.store.verify import verify_zoo

    report = verify_zoo(small_cnn_zoo["out"])
    assert report.ok, report.problems


def _variant(base: Path, target: Path, change) -> Path:
    """A copy of the fixture's folder with one file changed by ``change(folder)``."""
    import shutil

    shutil.copytree(base, target)
    change(target)
    return target


def _edit_layout(column: str, line: int, value: str):
    def change(folder: Path) -> None:
        table = pd.read_csv(folder / "layout.csv", dtype=str)
        table.loc[line, column] = value
        table.to_csv(folder / "layout.csv", index=False)

    return change


def test_bad_input_is_one_line_and_writes_nothing(small_cnn_zoo, tmp_path):
    source = small_cnn_zoo["source"]
    trap = tmp_path / "TRAPPED"
    pickled = np.empty(2, dtype=object)
    cases = {
        "missing": lambda f: (f / "layout.csv").unlink(),
        "code": _edit_layout("shape", 1, f"__import__('pathlib').Path('{trap}').touch()"),
        "shape": _edit_layout("shape", 1, "(3, 3, 1, 17)"),
        "kernel": _edit_layout("shape", 1, "(1, 3, 3, 16)"),  # right size, not HWIO
        "rows": lambda f: np.save(f / "weights.npy", np.load(f / "weights.npy")[:-1]),
        "pickle": lambda f: np.save(f / "weights.npy", pickled, allow_pickle=True),
    }
    for name, change in cases.items():
        folder = _variant(source, tmp_path / name, change)
        result = _cli(folder, tmp_path / "out")
        assert result.exit_code == 2, (name, result.output)
        assert result.output.count("\n") == 1 and result.output.startswith("error: "), result.output
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*")), name
    assert not trap.exists()
    unknown = _variant(source, tmp_path / "unknown", lambda f: None)
    table = pd.read_csv(unknown / "metrics.csv.gz").assign(**{"config.dataset": "imagenet2012"})
    table.to_csv(unknown / "metrics.csv.gz", index=False, compression="gzip")
    from modelzoo.cli import ZooGroup
    from modelzoo.publish.cli import import_zoo

    result = CliRunner().invoke(ZooGroup(commands={"import": import_zoo}),
                                ["import", str(unknown), "--from", "unterthiner", "--out",
                                 str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 2 and "imagenet2012" in result.output and "--dataset" in result.output


def test_import_help_teaches_every_registered_format():
    from modelzoo.publish.cli import IMPORT_FORMATS, import_zoo
    from modelzoo.publish.importers import IMPORTERS

    assert sorted(IMPORT_FORMATS) == sorted(IMPORTERS)
    text = CliRunner().invoke(import_zoo, ["--help"]).output
    assert all(name in text for name in IMPORTERS)
    assert "weights.npy" in text and "layout.csv" in text
