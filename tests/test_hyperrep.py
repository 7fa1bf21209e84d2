"""train-ae end to end on a tiny zoo: learning, the run folder contract, resume after kill -9,
the behavioural loss, and the CLI's one-line errors. Sizes are tiny so the file runs in seconds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file
from test_zoo_helpers import digits_zoo, seed_zoo

from modelzoo import open_zoo
from modelzoo.cli import main
from modelzoo.errors import ModelZooError
from modelzoo.hyperrep import list_presets, load_autoencoder, train_autoencoder
from modelzoo.hyperrep.config import build_config
from modelzoo.hyperrep.train import FAULT_ENV, Trainer

TINY = {
    "model": {"d_model": 16, "heads": 2, "ff_dim": 32, "latent": 8, "dropout": 0.1},
    "projection": {"layers": 2, "hidden": 16, "out": 8},
    "data": {"splits": [0.5, 0.25, 0.25]},
    "train": {"epochs": 6, "batch_size": 8, "lr": 3e-3, "warmup": 0.1, "checkpoint_every": 3},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ae") / "ecd"
    train_autoencoder(seed_zoo(), TINY, preset="ecd", out=out)
    return out


def test_training_learns_and_writes_the_run_folder(run):
    rep = load_autoencoder(run)
    log = rep.log
    assert list(log["epoch"]) == list(range(1, 7))
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]  # loss falls
    assert log["r2_train"].iloc[-1] > log["r2_train"].iloc[0]  # reconstruction improves
    for column in ("train_contrast", "train_structural", "val_loss", "r2_val", "r2_test",
                   "r2_test_fc1", "r2_test_fc2", "paper_r2_test", "lr", "seconds"):  # fmt: skip
        assert column in log and log[column].notna().all(), column
    for name in ("config.yaml", "normalization.json", "final.safetensors", "best.safetensors",
                 "checkpoints/epoch_0003.safetensors", "checkpoints/epoch_0006.safetensors",
                 "state.safetensors", "state.json", "log.parquet", "curves.png",
                 "embeddings.parquet"):  # fmt: skip
        assert (run / name).is_file(), name
    assert not (run.parent / "ecd.partial").exists()
    config = yaml.safe_load((run / "config.yaml").read_text())
    zoo = open_zoo(seed_zoo())
    assert config["preset"] == "ecd" and config["model"]["d_model"] == 16
    assert config["zoo"]["spec_fingerprint"] == zoo.manifest["spec_fingerprint"]
    assert config["zoo"]["parameters"] == 100 and config["zoo"]["splits"] == [0.5, 0.25, 0.25]
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # the weights loaded are the best checkpoint's: the epoch of lowest validation loss
    assert rep.epoch == int(log.loc[log["val_loss"].idxmin(), "epoch"])
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.yaml", "best.safetensors", "embeddings.parquet"):  # shared like a zoo
        assert (run / name).stat().st_mode & 0o777 == 0o644 & ~umask, name


def test_embeddings_cover_every_recorded_state_with_the_zoos_splits(run):
    zoo = open_zoo(seed_zoo())
    rep = load_autoencoder(run)
    frame = rep.embeddings
    metrics = zoo.metrics
    assert len(frame) == len(metrics) == len(zoo) * len(zoo.epochs)
    assert set(zip(frame["model_id"], frame["epoch"])) == set(zip(metrics["model_id"], metrics["epoch"]))
    parts = zoo.split([0.5, 0.25, 0.25], 0)
    for split, ids in parts.items():
        assert set(frame.loc[frame["split"] == split, "model_id"]) == set(ids.tolist())
    columns = [f"z_{i}" for i in range(8)]
    assert list(frame.columns) == ["model_id", "epoch", "split", *columns]
    row = frame[(frame["model_id"] == 3) & (frame["epoch"] == 2)]
    z = rep.encode(zoo.weights([3], [2])[:, 0])  # encode(): raw weights in, normalised inside
    assert np.allclose(z, row[columns].to_numpy(), atol=1e-6)
    decoded = rep.decode(z)
    assert decoded.shape == (1, 100) and np.isfinite(decoded).all()


def test_decode_inverts_the_normalisation():
    """The trainer's reconstruction path (tokenize, encode, decode, detokenize, invert) agrees
    with its own ``reconstruct``; ``HyperRepresentation.decode`` against an independent inversion
    from normalization.json: tests/test_sample.py."""
    zoo = open_zoo(seed_zoo())
    config = build_config("ecd", overrides=[f"{s}.{k}={v}" for s, keys in TINY.items()
                                            for k, v in keys.items()])  # fmt: skip
    trainer = Trainer(zoo, config, Path("unused"))
    split = trainer.splits["test"]
    own = trainer.norm.invert(trainer.reconstruct(split.flat).numpy())
    raw = trainer.norm.invert(split.flat.numpy())
    tokens = trainer.plan.tokenize(torch.from_numpy(trainer.norm.apply(raw)))
    with torch.no_grad():
        again = trainer.plan.detokenize(trainer.model.decode(trainer.model.encode(tokens)))
    assert np.allclose(trainer.norm.invert(again.numpy()), own, atol=1e-5)
    assert trainer.norm.normalized and not np.allclose(trainer.norm.scale, 1.0)


def test_the_logged_r2_is_scikit_learns_on_raw_weights_of_the_kept_checkpoint(tmp_path):
    """r2_test (overall and per layer) = sklearn's variance-weighted R^2 between the test
    split's raw weights (every stored epoch) and decode(encode(.)) of the final checkpoint."""
    from sklearn.metrics import r2_score

    settings = {**TINY, "train": {**TINY["train"], "select": "final", "eval_every": 3}}
    rep = train_autoencoder(seed_zoo(), settings, preset="ed", out=tmp_path / "ed")
    zoo = open_zoo(seed_zoo())
    ids = zoo.split([0.5, 0.25, 0.25], 0)["test"]
    w = zoo.weights(ids, zoo.epochs).reshape(-1, zoo.parameters)
    rebuilt = rep.decode(rep.encode(w))
    last = rep.log.iloc[-1]
    assert rep.config["data"]["normalize"]  # so a normalised-space R^2 would differ
    assert last["r2_test"] == pytest.approx(
        r2_score(w, rebuilt, multioutput="variance_weighted"), abs=1e-6)  # fmt: skip
    for slot in zoo.manifest["layout"]:
        if slot["name"].endswith(".weight"):
            layer, size = slot["name"][: -len(".weight")], int(np.prod(slot["shape"]))
            span = slice(slot["offset"], slot["offset"] + size)
            if not any(o["name"] == f"{layer}.bias" for o in zoo.manifest["layout"]):
                expected = r2_score(w[:, span], rebuilt[:, span], multioutput="variance_weighted")
                assert last[f"r2_test_{layer}"] == pytest.approx(expected, abs=1e-6)


def test_embedding_splits_follow_the_split_seed_and_name_unused_models_none(tmp_path):
    """Rows carry the split training used: the ok models split with data.split_seed; a model
    left out by data.status=ok (diverged, failed) is "none", never a train anchor."""
    from test_zoo_helpers import synthetic_zoo

    zoo = open_zoo(synthetic_zoo())
    settings = {**TINY, "data": {"splits": [0.5, 0.25, 0.25], "split_seed": 3},
                "train": {**TINY["train"], "epochs": 1}}  # fmt: skip
    rep = train_autoencoder(synthetic_zoo(), settings, preset="ed", out=tmp_path / "r")
    ok = zoo.select(status="ok")
    parts = ok.split([0.5, 0.25, 0.25], 3)
    assert {k: v.tolist() for k, v in parts.items()} != {
        k: v.tolist() for k, v in ok.split([0.5, 0.25, 0.25], 0).items()}  # fmt: skip
    frame = rep.embeddings
    for split, ids in parts.items():
        assert set(frame.loc[frame["split"] == split, "model_id"]) == set(ids.tolist())
    left_out = set(frame.loc[frame["split"] == "none", "model_id"])
    assert left_out and left_out == set(frame["model_id"]) - set(ok.model_ids.tolist())


def test_learning_rate_is_warmup_then_cosine_and_every_step_is_clipped(tmp_path, monkeypatch):
    """Each optimizer step's lr against the documented schedule (linear warm-up over
    train.warmup of all steps, then cosine to 0), and the gradient norm after clipping."""
    import math

    seen_lr, clipped = [], []
    step, clip = torch.optim.AdamW.step, torch.nn.utils.clip_grad_norm_

    def recording_step(self, *args, **kwargs):
        seen_lr.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    def recording_clip(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        result = clip(parameters, max_norm, *args, **kwargs)
        norm = torch.norm(torch.stack([p.grad.norm() for p in parameters if p.grad is not None]))
        clipped.append((max_norm, float(norm)))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    settings = {**TINY, "train": {**TINY["train"], "epochs": 4, "warmup": 0.25, "clip": 0.05,
                                  "checkpoint_every": 0}}  # fmt: skip
    train_autoencoder(seed_zoo(), settings, preset="ed", out=tmp_path / "s")
    total, peak = len(seen_lr), TINY["train"]["lr"]
    warm = int(0.25 * total)
    expected = [peak * (s + 1) / warm if s < warm
                else peak * 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm)))
                for s in range(total)]  # fmt: skip
    assert total >= 8 and warm >= 2
    np.testing.assert_allclose(seen_lr, expected, rtol=1e-12)
    assert len(clipped) == total and {m for m, _ in clipped} == {0.05}
    assert max(n for _, n in clipped) <= 0.05 * (1 + 1e-5)


def test_resume_after_kill_ends_with_the_same_weights(tmp_path, run):
    """kill -9 in the middle of epoch 4 (after epoch 3's resume state), rerun: bit-equal weights."""
    out = tmp_path / "killed"
    script = (
        "import sys, torch; torch.set_num_threads(int(sys.argv[3]))\n"
        "from modelzoo.hyperrep import train_autoencoder\n"
        f"train_autoencoder(sys.argv[1], {TINY!r}, preset='ecd', out=sys.argv[2])\n"
    )
    env = {**os.environ, FAULT_ENV: "4:1"}
    args = [str(seed_zoo()), str(out), str(torch.get_num_threads())]
    done = subprocess.run([sys.executable, "-c", script, *args],
                          env=env, capture_output=True, cwd=Path(__file__).parent)  # fmt: skip
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    partial = tmp_path / "killed.partial"
    state = yaml.safe_load((partial / "state.json").read_text())
    assert state["epoch"] == 3 and not out.exists()
    train_autoencoder(seed_zoo(), TINY, preset="ecd", out=out)  # the same call resumes
    for name in ("final.safetensors", "best.safetensors", "checkpoints/epoch_0006.safetensors",
                 "state.safetensors"):  # fmt: skip
        mine, theirs = load_file(out / name), load_file(run / name)
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), name
        assert (out / name).read_bytes() == (run / name).read_bytes(), name  # metadata too
    assert not (out / "writer.lock").exists() and not partial.exists()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "log.parquet").drop(columns="seconds"),
                                  pd.read_parquet(run / "log.parquet").drop(columns="seconds"))  # fmt: skip


def test_behavioural_loss_is_zero_for_a_perfect_reconstruction_and_reaches_the_decoder():
    zoo = open_zoo(digits_zoo())
    config = build_config(overrides=["model.d_model=16", "model.ff_dim=16", "model.latent=8",
                                     "loss.gamma=0", "loss.beta=0", "loss.query_count=32",
                                     "augment.erase=0", "data.splits=[0.5,0.25,0.25]"])  # fmt: skip
    trainer = Trainer(zoo, config, Path("unused"))
    split = trainer.splits["train"]
    rows = np.arange(len(split))
    y = split.flat[torch.from_numpy(rows)]
    perfect = trainer.behaviour(trainer.plan.tokenize(y), y, split, rows, 1, 0)
    assert float(perfect) == 0.0
    trainer.modules.train()
    terms = trainer.losses(split, rows, 1, 0)
    assert float(terms["behaviour"].detach()) > 0
    assert float(terms["loss"].detach()) == float(terms["behaviour"].detach())
    terms["loss"].backward()
    grads = [p.grad for p in trainer.model.decoder.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_sequential_model_trains_in_windows(tmp_path):
    settings = {"model": {"d_model": 16, "heads": 2, "ff_dim": 16, "latent": 4, "blocks": 1,
                          "token_size": 9, "window": 3},
                "data": {"epochs": None, "splits": [0.5, 0.25, 0.25]},
                "train": {"epochs": 2, "batch_size": 4}}  # fmt: skip
    rep = train_autoencoder(digits_zoo(), settings, preset="lc+ls", out=tmp_path / "seq")
    zoo = open_zoo(digits_zoo())
    w = zoo.weights(epochs=zoo.epochs[-1])
    tokens = rep.encode(w, per_token=True)
    assert tokens.shape[0] == len(w) and tokens.shape[2] == 4
    assert np.allclose(rep.encode(w), tokens.mean(axis=1), atol=1e-6)  # embedding = mean
    assert rep.decode(tokens).shape == w.shape


def _cli(*args: str):
    return CliRunner().invoke(main, ["train-ae", *args])


def test_cli_lists_presets_with_their_sources():
    result = _cli("--list-presets")
    assert result.exit_code == 0
    misspelt = _cli("--list-presets", "--preset", "ecdd")
    assert misspelt.exit_code == 2 and "unknown preset 'ecdd'" in misspelt.output
    for name in list_presets():
        assert any(line.split()[0] == name and "paper" in line for line in result.output.splitlines())
    assert len(list_presets()) == 14
    lines = result.output.splitlines()
    sets = {line.split()[0]: lines[i + 1] for i, line in enumerate(lines) if "paper" in line}
    assert sets["ed"].split() == ["sets:", "loss.gamma=0.0,", "train.epochs=1000"]
    base = build_config(None)
    for name, line in sets.items():  # each line lists exactly the keys the preset changes
        changed = build_config(name)
        differ = {f"{s}.{k}" for s in base for k in base[s] if changed[s][k] != base[s][k]}
        assert set(re.findall(r"(\w+\.\w+)=", line)) == differ, name


def test_cli_lists_every_config_key_with_its_default():
    from modelzoo.hyperrep.config import FIELDS, defaults

    lines = _cli("--list-keys").output.splitlines()
    assert [line.split()[0] for line in lines] == list(FIELDS)
    base = defaults()
    for line in lines:
        key, shown = line.split()[:2]
        section, name = key.split(".")
        assert yaml.safe_load(shown) == base[section][name] or shown == str(base[section][name]), key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "edd"], "unknown preset 'edd'; choose one of: ed, ec, ecd"),
        (["--set", "loss.contrast=simclr"], "--set: loss.contrast: unknown value 'simclr'; choose one of: ntxent, positive"),
        (["--set", "loss.gama=0.1"], "unknown key 'loss.gama'; keys of loss:"),
        (["--set", "model.name=vae"], "unknown autoencoder 'vae'; choose one of: attention, feedforward, sequential"),
        (["--set", "model.heads=3"], "model.heads: 3 does not divide model.d_model 128"),
        (["--set", "data.epochs=[99]"], "data.epochs: epoch(s) [99] are not stored"),
        (["--set", "train.batch_size=1"], "--set: train.batch_size: NT-Xent (loss.gamma 0.5 > 0) "
                                          "compares the samples of a batch: expected an integer >= 2"),
        (["--set", "train.batch_size=0"], "train.batch_size: expected an integer >= 1"),
        (["--device", "gpu"], "--device: expected cpu, cuda or cuda:N"),
        (["--epochs", "0"], "--epochs: train.epochs: expected an integer >= 1"),
        (["--set", "data.splits=[1, 0, 0]"], "--set: data.splits: a validation fraction of 0 "
                                             "leaves train.select=best nothing to choose on"),
        (["--set", "loss.query_dataset=digits"], "--set: loss.query_dataset: only read when "
                                                 "loss.queries=dataset (it is 'train')"),
        (["--set", "loss.queries=dataset"], "--set: loss.query_dataset: queries=dataset needs a "
                                            "registered dataset, got nothing; choose one of: "),
        (["--set", "loss.queries=dataset", "--set", "loss.query_dataset=nosuch"],
         "--set: loss.query_dataset: queries=dataset needs a registered dataset, got 'nosuch'"),
        (["--set", "model.d_model=16", "--set", "model.heads=3"],
         "--set: model.heads: 3 does not divide model.d_model 16; choose one of: 1, 2, 4, 8, 16"),
    ],
)
def test_bad_configs_give_one_line_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "run"
    result = _cli(str(seed_zoo()), *args, "--out", str(out))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not out.exists() and not (tmp_path / "run.partial").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("loss:\n  gamma: 2\n", "loss.gamma: expected a number in [0.0, 1.0]"),
        ("train:\n  lr: 1e-3\n  lr: 1e-4\n", "cannot read: line 3: duplicate key 'lr'"),
        ("train: !!python/object/apply:os.system ['echo pwned']\n",
         "cannot read: line 1: YAML tag not allowed (!!python/object/apply:os.system)"),
        ("train:\n  lr: [1e-3\n", "cannot read: malformed YAML at line 3"),
        ("# only a comment\n", "empty; expected a mapping of sections (model, projection"),
        ("train:\n  yes: 1\n", "cannot read: line 2: key 'yes' reads as True, not as text: quote it"),
        ("a: &x\n  lr: 1\ntrain:\n  <<: *x\n", "cannot read: line 4: YAML merge keys (<<:) are not supported"),
    ],
)
def test_config_file_errors_name_the_file(tmp_path, text, message):
    """A --config file is read like a spec: data only, no duplicate keys, one line naming it."""
    path = tmp_path / "ae.yaml"
    path.write_text(text)
    result = _cli(str(seed_zoo()), "--config", str(path), "--out", str(tmp_path / "x"))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and f"{path}: {message}" in lines[0], lines
    assert not (tmp_path / "x").exists()


def test_cli_trains_and_refuses_an_existing_run(tmp_path, run):
    out = tmp_path / "cli"
    args = [str(seed_zoo()), "--preset", "ed", "--epochs", "1", "--quiet", "--out", str(out),
            "--set", "model.d_model=8", "--set", "model.ff_dim=8", "--set", "train.batch_size=16"]  # fmt: skip
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    assert "kept the best checkpoint (epoch 1, test R^2 " in result.output
    assert (out / "embeddings.parquet").is_file()
    again = _cli(*args)
    assert again.exit_code == 2 and "already exists" in again.output


def test_exponent_numbers_are_numbers_in_set_and_in_config_files(tmp_path):
    """PyYAML reads "1e-3" as a string; the config reads it as the number the user meant."""
    path = tmp_path / "ae.yaml"
    path.write_text("train:\n  lr: 1e-3\n  weight_decay: 3E-9\n")
    config = build_config("ed", path, ["loss.temperature=5e-2"])
    assert config["train"]["lr"] == 0.001 and config["train"]["weight_decay"] == 3e-9
    assert config["loss"]["temperature"] == 0.05


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: ["/nonexistent/zoo", "--out", str(tmp / "run")], "/nonexistent/zoo"),
        (lambda tmp: [str(seed_zoo()), "--config", str(tmp / "missing.yaml"), "--out", str(tmp / "run")],
         "missing.yaml: cannot read"),
        (lambda tmp: [str(seed_zoo())], "missing --out"),
    ],
)  # fmt: skip
def test_missing_inputs_give_one_line(tmp_path, make, message):
    result = _cli(*make(tmp_path))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


def test_load_autoencoder_of_an_incomplete_folder_is_one_error(tmp_path):
    from modelzoo.errors import ModelZooError

    with pytest.raises(ModelZooError, match="not a train-ae run folder: missing config.yaml"):
        load_autoencoder(tmp_path)


def test_a_run_folder_missing_its_selected_checkpoint_is_refused(tmp_path, run):
    """train.select=best: best.safetensors is what embeddings were made from; without it the
    folder is incomplete (no silent fallback to final.safetensors)."""
    import shutil

    from modelzoo.errors import ModelZooError

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "best.safetensors").unlink()
    with pytest.raises(ModelZooError, match="missing best.safetensors \\(train.select=best\\)"):
        load_autoencoder(copy)


def test_a_finished_runs_config_is_a_config_file_and_auto_is_a_device(tmp_path, run):
    config = build_config(file=run / "config.yaml", overrides=["train.epochs=1"], device="auto")
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    for section in ("model", "loss", "data", "augment"):
        assert config[section] == recorded[section], section
    rep = train_autoencoder(seed_zoo(), config, out=tmp_path / "again")
    assert rep.config["train"]["device"] == "cpu"  # no GPU here: auto resolved and recorded


def test_probe_refuses_a_damaged_embeddings_folder_before_fitting(tmp_path, run):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "config.yaml").write_text("model: [\n")
    result = CliRunner().invoke(main, ["probe", str(seed_zoo()), "--features", "W",
                                       "--embeddings", str(broken), "--quiet"])  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{broken / 'config.yaml'}: cannot read" in lines[0], lines


def _edit_yaml(path: Path, change) -> None:
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))


def _set_json(name: str, value: str):
    """normalization.json with one raw JSON value (NaN and Infinity are what json.dumps writes)."""

    def change(document):
        document["layers"]["fc1"][name] = value

    return change


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("config.yaml", lambda c: c.pop("format"), "format: expected 'modelzoo-hyperrep/1'"),
        ("config.yaml", lambda c: c["model"].update(d_model="big"), "model.d_model: expected"),
        ("config.yaml", lambda c: c["model"].update(colour=1), "model.colour"),
        ("config.yaml", lambda c: c["model"].pop("heads"), "model.heads: missing"),
        ("config.yaml", lambda c: c.pop("model"), "model.name: missing"),
        ("config.yaml", lambda c: c["zoo"].pop("architecture"), "zoo.architecture: expected"),
        ("config.yaml", lambda c: c["zoo"].update(architecture="mlp9"), "unknown architecture"),
        ("config.yaml", lambda c: c["zoo"].update(num_classes=-3), "zoo.num_classes: expected"),
        ("config.yaml", lambda c: c["zoo"].update(num_classes=True), "zoo.num_classes: expected"),
        ("config.yaml", lambda c: c["zoo"].update(input_shape=[]), "zoo.input_shape: expected"),
        ("config.yaml", lambda c: c["zoo"].update(input_shape=[1, 8, 8]), "zoo.parameters: "),
        ("config.yaml", lambda c: c["zoo"].update(epochs="3"), "zoo.epochs: expected"),
        ("config.yaml", lambda c: c["zoo"].pop("path"), "zoo.path: expected"),
        ("config.yaml", lambda c: c["zoo"].update(splits="x"), "zoo.splits: expected"),
        ("config.yaml", lambda c: c["model"].update(d_model=32), "the weights do not fit"),
        ("normalization.json", lambda c: c["layers"].pop("fc2"), "for the layers fc1, fc2"),
        ("normalization.json", lambda c: c.update(applied="yes"), '"applied": true/false'),
        ("normalization.json", _set_json("mean", float("inf")), "layers.fc1: expected"),
        ("normalization.json", _set_json("std", float("nan")), "layers.fc1: expected"),
        ("normalization.json", _set_json("std", -5.0), "layers.fc1: expected"),
        ("normalization.json", _set_json("mean", "0.5"), "layers.fc1: expected"),
    ],
)
def test_an_edited_run_folder_is_one_line_naming_the_file(tmp_path, run, name, change, message):
    """Loading checks config.yaml as a --config file is checked (every setting present), its zoo
    record, the weights against the model it describes and normalization.json against the zoo's
    layers, and says which file and key are wrong."""
    import json
    import shutil

    from modelzoo.errors import ModelZooError

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    if name.endswith(".json"):
        document = json.loads((copy / name).read_text())
        change(document)
        (copy / name).write_text(json.dumps(document))
    else:
        _edit_yaml(copy / name, change)
    with pytest.raises(ModelZooError) as raised:
        load_autoencoder(copy)
    said = str(raised.value)
    assert message in said and str(copy) in said and "\n" not in said, said
    assert len(said) < 600, said  # one readable line, not torch's list of every mismatch


def test_damaged_bytes_and_columns_are_one_line(tmp_path, run):
    import shutil

    from modelzoo.errors import ModelZooError

    cases = {
        "config.yaml": (b"format: \xff\xfe\n", "cannot read"),
        "best.safetensors": (b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ", "no epoch"),
    }
    for name, (content, message) in cases.items():
        copy = tmp_path / name
        shutil.copytree(run, copy)
        (copy / name).write_bytes(content)
        with pytest.raises(ModelZooError, match=message):
            load_autoencoder(copy)
    copy = tmp_path / "columns"
    shutil.copytree(run, copy)
    frame = pd.read_parquet(copy / "embeddings.parquet").drop(columns=["split"])
    frame.to_parquet(copy / "embeddings.parquet")
    with pytest.raises(ModelZooError, match="embeddings.parquet: missing column\\(s\\) split"):
        _ = load_autoencoder(copy).embeddings
    edits = {
        "split": (lambda f: f.assign(split="training"), r"split: unknown value\(s\) \['training'\]"),
        "twice": (lambda f: pd.concat([f, f.iloc[:1]]), r"\(model_id, epoch\) appears twice"),
        "nan": (lambda f: f.assign(z_0=np.where(f.index < 3, np.nan, f["z_0"])), "3 row\\(s\\) hold NaN"),
        "ids": (lambda f: f.assign(model_id=f["model_id"].astype(str)), "model_id: expected integers, got "),
        "epoch": (lambda f: f.assign(epoch=-f["epoch"] - 1), "epoch: expected integers >= 0, got -"),
        "extra": (lambda f: f.assign(z_99=0.0), r"unexpected column\(s\) z_99"),
        "z": (lambda f: f.assign(z_1=f["z_1"].astype(str)), "expected floating-point columns"),
        "empty": (lambda f: f.iloc[:0], "no rows"),
    }  # fmt: skip
    for name, (edit, message) in edits.items():
        copy = tmp_path / f"embeddings_{name}"
        shutil.copytree(run, copy)
        edit(pd.read_parquet(copy / "embeddings.parquet")).to_parquet(copy / "embeddings.parquet")
        with pytest.raises(ModelZooError, match=message):
            _ = load_autoencoder(copy).embeddings


def test_encode_and_decode_refuse_what_has_no_answer(run):
    rep = load_autoencoder(run)
    flat = np.array(open_zoo(seed_zoo()).weights(epochs=0)[:3], dtype=np.float32)
    flat[1, 0] = np.nan
    with pytest.raises(ModelZooError, match="encode: 1 of 3 weight vectors hold NaN or inf"):
        rep.encode(flat)
    with pytest.raises(ModelZooError, match="encode: 1 of 1 weight vectors hold NaN or inf, or values beyond"):
        rep.encode(np.full((1, rep.parameters), 1e300))  # finite in float64, not in float32
    with pytest.raises(ModelZooError, match="encode: expected numeric weights, got dtype <U1"):
        rep.encode(np.full((1, rep.parameters), "x"))
    with pytest.raises(ModelZooError, match="per_token is for the sequential model"):
        rep.encode(flat[[0, 2]], per_token=True)
    with pytest.raises(ModelZooError, match="decode: the latents hold NaN"):
        rep.decode(np.full((1, rep.latent), np.nan, np.float32))
    if not torch.cuda.is_available():
        with pytest.raises(ModelZooError, match="this machine has 0 CUDA device"):
            load_autoencoder(run, device="cuda")


def _interrupted_after_epoch_one(zoo, out, monkeypatch) -> Path:
    """A partial run folder as Ctrl-C after epoch 1 leaves it."""
    saved = Trainer.save_epoch

    def save_then_stop(self, row, last):
        saved(self, row, last)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_epoch", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(zoo, TINY, preset="ecd", out=out)
    monkeypatch.setattr(Trainer, "save_epoch", saved)
    partial = out.with_name(out.name + ".partial")
    assert (partial / "state.json").is_file() and not (partial / "writer.lock").exists()
    return partial


def test_resume_refuses_a_zoo_that_changed_since(tmp_path, monkeypatch):
    """A zoo that grew between the interrupt and the resume would train the rest of the run on
    other models than its normalisation and first epochs saw: refused, naming what changed."""
    zoo = open_zoo(seed_zoo())
    first = zoo.select(model_id=list(zoo.model_ids[: len(zoo.model_ids) * 3 // 4]))
    out = tmp_path / "run"
    partial = _interrupted_after_epoch_one(first, out, monkeypatch)
    before = sorted(p.name for p in partial.iterdir())
    with pytest.raises(ModelZooError, match=r"different config or zoo \(zoo.split_states: \["):
        train_autoencoder(zoo, TINY, preset="ecd", out=out)
    assert sorted(p.name for p in partial.iterdir()) == before and not out.exists()


def test_a_second_process_on_the_same_out_is_refused(tmp_path, monkeypatch):
    """Two train-ae runs on one --out would both write its .partial: the second is refused with
    the first one's pid, and the first's files are left alone."""
    import json
    import socket

    from modelzoo.store import lock

    out = tmp_path / "run"
    partial = _interrupted_after_epoch_one(seed_zoo(), out, monkeypatch)
    before = {p.name: p.stat().st_mtime_ns for p in partial.iterdir()}
    other = os.getppid()  # a live process on this host that is not us
    (partial / "writer.lock").write_text(json.dumps(
        {"pid": other, "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00",
         "token": "other", "boot": lock._boot_id()}))  # fmt: skip
    def read_the_zoo(*args, **kwargs):
        raise AssertionError("the zoo was read before the lock was checked")

    monkeypatch.setattr(Trainer, "__init__", read_the_zoo)  # refused before any reading
    result = _cli(str(seed_zoo()), "--preset", "ecd", "--out", str(out))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert f"another modelzoo process is writing this folder (pid {other} on" in lines[0]
    assert {p.name: p.stat().st_mtime_ns for p in partial.iterdir() if p.name != "writer.lock"} == before


@pytest.mark.parametrize(
    ("splits", "select", "message"),
    [
        ("[0.98, 0.01, 0.01]", "best", "leave 12 train / 0 validation / 0 test states; "
         "train.select=best needs at least 2 (NT-Xent compares two) to choose on"),
        ("[0.1, 0.1, 0.8]", "final", "leave 1 train / 1 validation / 10 test states; training "
         "needs at least 2 (NT-Xent compares two)"),
    ],
)
def test_splits_too_small_for_the_config_are_refused(tmp_path, splits, select, message):
    """Small, --limit or --sample zoos can leave a split empty: refused before anything is
    written instead of silently choosing the best epoch on the training loss."""
    out = tmp_path / "run"
    result = _cli(str(seed_zoo()), "--preset", "ecd", "--set", f"data.splits={splits}",
                  "--set", "data.epochs=[3]", "--set", f"train.select={select}", "--out", str(out))  # fmt: skip
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert message in lines[0], lines[0]
    assert not out.exists() and not (tmp_path / "run.partial").exists()


def test_an_empty_validation_split_with_select_final_logs_nan_not_the_train_loss(tmp_path):
    config = {**TINY, "data": {"splits": [0.98, 0.01, 0.01]},
              "train": {**TINY["train"], "epochs": 2, "select": "final"}}  # fmt: skip
    rep = train_autoencoder(seed_zoo(), config, preset="ecd", out=tmp_path / "run")
    assert rep.log["val_loss"].isna().all() and rep.log["train_loss"].notna().all()
    assert rep.config["zoo"]["split_states"][1:] == [0, 0] and rep.epoch == 2


def test_validation_never_scores_a_lone_state(tmp_path):
    """Validation batches hold batch .. 2*batch-1 states: a split of 2*batch+1 is two batches,
    none of one state (NT-Xent of one state is 0, which made val_loss look perfect)."""
    zoo = open_zoo(seed_zoo())
    config = build_config("ecd", overrides=["model.d_model=16", "model.ff_dim=16", "model.heads=2",
                                            "model.latent=8", "train.batch_size=4"])  # fmt: skip
    trainer = Trainer(zoo, config, Path("unused"))
    trainer.splits["val"] = type(trainer.splits["val"])(
        *(part[:9] for part in (trainer.splits["train"].model_ids, trainer.splits["train"].epochs,
                                trainer.splits["train"].flat, trainer.splits["train"].activations)))  # fmt: skip
    seen = []
    real = trainer.losses
    trainer.losses = lambda split, rows, epoch, batch: seen.append(rows.size) or real(split, rows, epoch, batch)
    row = trainer.validate()
    assert seen == [5, 4] and row["val_contrast"] > 0 and row["val_structural"] > 0


def test_out_that_cannot_be_a_folder_is_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, message in ((afile / "sub", f"{afile} is a file, not a folder"),
                         (afile, "is a file; choose a new folder")):  # fmt: skip
        result = _cli(str(seed_zoo()), "--out", str(out))
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output


def test_out_through_a_missing_folder_and_dotdot_creates_only_the_run(tmp_path):
    """``--out missing/../run`` is ``./run`` to the OS once it exists; ``mkdir -p`` of the work
    folder would have created ``missing/`` too."""
    result = _cli(str(seed_zoo()), "--preset", "ed", "--epochs", "1", "--set", "model.d_model=16",
                  "--set", "model.ff_dim=16", "--quiet",
                  "--out", f"{tmp_path}/missing/../run")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_a_step_that_cannot_fit_in_memory_is_refused_with_a_batch_that_does(tmp_path, monkeypatch):
    """AttW on a CNN zoo holds [batch x views, heads, T, T] attention matrices per block: with too
    little free memory the run is refused up front (the kernel would kill it mid-epoch) and told
    a batch size that fits."""
    from modelzoo.hyperrep import preflight

    zoo = open_zoo(digits_zoo())
    config = build_config("attw", overrides=["data.splits=[0.5,0.25,0.25]"])
    trainer = Trainer(zoo, config, Path("unused"))  # fits: this machine has the memory
    tokens, batch = zoo.parameters + 1, trainer.batch  # one token per weight + compression token
    blocks = 2 * config["model"]["blocks"]  # encoder and decoder, one head each
    assert preflight.attention_bytes(trainer, batch) == 20 * batch * 2 * blocks * tokens**2
    free = preflight.attention_bytes(trainer, batch) // 2
    monkeypatch.setattr(preflight, "available_memory", lambda: free)
    out = tmp_path / "run"
    result = _cli(str(digits_zoo()), "--preset", "attw", "--set", "data.splits=[0.5,0.25,0.25]",
                  "--out", str(out))  # fmt: skip
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    suggested = int(re.search(r"--set train.batch_size=(\d+)", lines[0]).group(1))
    assert 2 <= suggested < batch and preflight.attention_bytes(trainer, suggested) <= free
    assert "model.encoding=neuron" in lines[0] and not out.exists()


@pytest.mark.parametrize("extra", [
    ["--epochs", "3", "--set", "train.batch_size=8"],  # a NaN loss mid-run
    ["--epochs", "1", "--set", "train.warmup=0", "--set", "train.batch_size=500"],  # one step: NaN weights after it
])  # fmt: skip
def test_a_diverging_run_stops_with_one_line_and_is_never_published(tmp_path, extra):
    out = tmp_path / "run"
    result = _cli(str(seed_zoo()), "--preset", "ed", *extra, "--set", "train.lr=1e9",
                  "--set", "train.clip=0", "--set", "model.d_model=16", "--set", "model.ff_dim=16",
                  "--quiet", "--out", str(out))  # fmt: skip
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "train-ae diverged" in lines[0], result.output
    assert "lower train.lr (it is 1e+09)" in lines[0] and not out.exists()


def test_a_dangling_symlink_out_is_refused_before_training(tmp_path):
    out = tmp_path / "link"
    out.symlink_to(tmp_path / "nowhere")
    result = _cli(str(seed_zoo()), "--out", str(out))
    assert result.exit_code == 2 and "is a symbolic link" in result.output, result.output
    assert not (tmp_path / "link.partial").exists()


def test_ctrl_c_says_where_the_run_can_resume_from(tmp_path, monkeypatch):
    import modelzoo.hyperrep.api as api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "early"
    monkeypatch.setattr(api, "run_training", interrupted)
    result = _cli(str(seed_zoo()), "--out", str(out))
    assert result.exit_code == 130 and "before the first epoch finished" in result.output
    monkeypatch.undo()
    partial = _interrupted_after_epoch_one(seed_zoo(), tmp_path / "late", monkeypatch)
    monkeypatch.setattr(api, "run_training", interrupted)
    result = _cli(str(seed_zoo()), "--out", str(tmp_path / "late"))
    assert result.exit_code == 130 and f"{partial} keeps the last finished epoch" in result.output
    spelled = f"{tmp_path}/missing/../late"  # the .partial is found however --out is spelt
    result = _cli(str(seed_zoo()), "--out", spelled)
    assert result.exit_code == 130 and f"{partial} keeps the last finished epoch" in result.output


def test_the_closing_line_says_why_there_is_no_test_r2(tmp_path):
    args = ["--preset", "ed", "--epochs", "1", "--set", "model.d_model=8", "--set", "model.ff_dim=8",
            "--set", "train.batch_size=4", "--set", "data.splits=[0.8,0.2,0]", "--quiet"]  # fmt: skip
    result = _cli(str(seed_zoo()), *args, "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "no test R^2: the test split holds 0 state(s)" in result.output


def test_a_contrast_only_run_does_not_decode_and_data_dir_is_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    config = {**TINY, "train": {**TINY["train"], "epochs": 1}, "data": {"data_dir": "images"}}
    rep = train_autoencoder(seed_zoo(), config, preset="ec", out=tmp_path / "ec")
    assert rep.config["data"]["data_dir"] == str(tmp_path / "images")
    with pytest.raises(ModelZooError, match="never trained"):
        rep.decode(np.zeros((1, rep.latent), np.float32))
    embed = rep.model.embed  # an encoder overflowing on weights far outside its training range
    monkeypatch.setattr(rep.model, "embed", lambda z: embed(z).index_fill(0, torch.tensor([1]), np.nan))
    with pytest.raises(ModelZooError, match="encode: 1 of 3 weight vectors encode to NaN or inf"):
        rep.encode(np.zeros((3, rep.parameters), np.float32))


def test_ed_trains_with_batches_of_one_state(tmp_path):
    """Without NT-Xent nothing compares the samples of a batch: batch size 1 is valid for ED."""
    config = {"model": {"d_model": 8, "heads": 1, "ff_dim": 8, "latent": 4},
              "train": {"epochs": 1, "batch_size": 1, "lr": 1e-3}}  # fmt: skip
    rep = train_autoencoder(seed_zoo(), config, preset="ed", out=tmp_path / "run")
    assert np.isfinite(rep.log["val_loss"]).all() and len(rep.embeddings)
