"""Sparse twins (modelzoo.sparsify) checked against independent computations: the KL term against
numpy, the local reparameterisation moments against plain torch sums over weights, every stored
twin state's test accuracy against a plain-torch forward pass over the stored (pruned) weights."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

os.environ.setdefault("TQDM_DISABLE", "1")

from modelzoo.cli import ZooGroup, verify
from modelzoo.sparsify import kl_approximation, log_alpha, reparameterised_moments
from modelzoo.sparsify.cli import sparsify as sparsify_command
from modelzoo.zoo import open_zoo

EPOCHS = 3


def cli() -> ZooGroup:
    group = ZooGroup()
    group.add_command(sparsify_command)
    group.add_command(verify)
    return group


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """3 tetris MLPs, 2 epochs, large batches and lr (a fast zoo whose twins sparsify visibly)."""
    from modelzoo.run import generate
    from modelzoo.spec import load_spec

    spec = load_spec("tetris_seed", ["training.epochs=2", "seeds.range=[1,3]",
                                     "training.batch_size=50", "training.lr=0.01"])  # fmt: skip
    return generate(spec, tmp_path_factory.mktemp("src"), executor="local").zoo_dir


@pytest.fixture(scope="module")
def twin(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("twin") / "tetris_sparse"
    result = CliRunner().invoke(cli(), ["sparsify", str(source), "--epochs", str(EPOCHS),
                                        "--out", str(out), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_twin_opens_verifies_and_keeps_model_ids_and_source(source, twin):
    src, tw = open_zoo(source), open_zoo(twin)
    assert list(tw.model_ids) == list(src.model_ids)
    assert tw.epochs == list(range(EPOCHS + 1))
    record = json.loads(tw.manifest["spec"]["source"])
    assert record["spec_fingerprint"] == src.manifest["spec_fingerprint"]
    assert record["name"] == src.manifest["name"] and record["sparsify"]["epochs"] == EPOCHS
    assert "sparsity" in tw.metrics.columns
    result = CliRunner().invoke(cli(), ["verify", str(twin)])
    assert result.exit_code == 0, result.output


def test_epoch_zero_is_the_sources_last_checkpoint(source, twin):
    src, tw = open_zoo(source), open_zoo(twin)
    last = max(src.epochs)
    np.testing.assert_array_equal(tw.weights(epochs=0), src.weights(epochs=last))
    a = src.metrics[src.metrics.epoch == last].sort_values("model_id")["test_acc"].to_numpy()
    b = tw.metrics[tw.metrics.epoch == 0].sort_values("model_id")["test_acc"].to_numpy()
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_sparsity_rises_and_is_the_share_of_zero_weights(twin):
    tw = open_zoo(twin)
    weight_slots = [s for s in tw.layout if s.name.endswith("weight")]
    for model_id in tw.model_ids:
        rows = tw.metrics[tw.metrics.model_id == model_id].sort_values("epoch")
        sparsity = rows["sparsity"].to_numpy()
        assert sparsity[-1] > sparsity[0] and np.all(np.diff(sparsity) >= -0.02), sparsity
        flat = tw.weights(int(model_id))
        zeros = [sum(int((f[s.offset : s.offset + s.size] == 0).sum()) for s in weight_slots)
                 for f in flat]  # fmt: skip
        total = sum(s.size for s in weight_slots)
        np.testing.assert_allclose(sparsity, np.array(zeros) / total, atol=1e-12)


def test_stored_accuracy_equals_plain_torch_on_the_stored_pruned_weights(twin):
    tw = open_zoo(twin)
    test = tw.data("test")
    x, y = test.images.reshape(test.images.shape[0], -1), test.labels
    names = [s.name for s in tw.layout]  # tetris MLP: fc1 (tanh) fc2, biases where present
    for model_id in tw.model_ids:
        for epoch in tw.epochs:
            state = tw.state_dict(int(model_id), epoch)
            h = x
            pairs = [(state[n], state.get(n[:-6] + "bias", 0.0)) for n in names
                     if n.endswith("weight")]  # fmt: skip
            for i, (w, b) in enumerate(pairs):
                h = h @ w.T + b
                if i < len(pairs) - 1:
                    h = torch.tanh(h)
            accuracy = float((h.argmax(1) == y).double().mean())
            row = tw.metrics[(tw.metrics.model_id == model_id) & (tw.metrics.epoch == epoch)]
            assert float(row["test_acc"].iloc[0]) == pytest.approx(accuracy, abs=1e-12)


def test_kl_term_equals_numpy_formula():
    rng = np.random.default_rng(0)
    la = rng.uniform(-10, 10, size=200)
    k1, k2, k3 = 0.63576, 1.87320, 1.48695
    expected = -np.sum(k1 / (1 + np.exp(-(k2 + k3 * la))) - 0.5 * np.log1p(np.exp(-la)) - k1)
    got = float(kl_approximation(torch.tensor(la, dtype=torch.float64)))
    assert got == pytest.approx(expected, rel=1e-10)


def test_log_alpha_is_log_sigma2_minus_log_theta2():
    w = torch.tensor([0.5, -0.01, 2.0], dtype=torch.float64)
    s = torch.tensor([-3.0, -1.0, -20.0], dtype=torch.float64)
    expected = np.clip(s.numpy() - np.log(w.numpy() ** 2), -10, 10)
    np.testing.assert_allclose(log_alpha(w, s).numpy(), expected, rtol=1e-12)


def test_local_reparameterisation_moments_linear_and_conv():
    torch.manual_seed(0)
    linear = nn.Linear(5, 3).double().requires_grad_(False)
    x = torch.randn(4, 5, dtype=torch.float64)
    ls = torch.randn(3, 5, dtype=torch.float64) - 2
    mean, var = reparameterised_moments(linear, x, ls)
    alpha = torch.exp(torch.clamp(ls - torch.log(linear.weight**2), -10, 10))  # repo clamp
    for n in range(4):
        for j in range(3):
            w = linear.weight[j]
            assert float(mean[n, j]) == pytest.approx(float((x[n] * w).sum() + linear.bias[j]))
            assert float(var[n, j]) == pytest.approx(float((x[n] ** 2 * alpha[j] * w**2).sum()))
    conv = nn.Conv2d(2, 3, 3, padding=1).double().requires_grad_(False)
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    ls = torch.randn(3, 2, 3, 3, dtype=torch.float64) - 2
    mean, var = reparameterised_moments(conv, x, ls)
    alpha = torch.exp(torch.clamp(ls - torch.log(conv.weight**2), -10, 10))
    patches = nn.functional.unfold(x, 3, padding=1)  # [N, C*9, 25]
    w = conv.weight.reshape(3, -1)
    direct_mean = torch.einsum("nkp,ok->nop", patches, w) + conv.bias.view(1, 3, 1)
    direct_var = torch.einsum("nkp,ok->nop", patches**2, (alpha.reshape(3, -1) * w**2))
    torch.testing.assert_close(mean.reshape(2, 3, -1), direct_mean)
    torch.testing.assert_close(var.reshape(2, 3, -1), direct_var)


def test_dry_run_json_reports_states_per_model(source):
    result = CliRunner().invoke(cli(), ["sparsify", str(source), "--epochs", "25", "--dry-run",
                                        "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    models = len(open_zoo(source).model_ids)
    assert summary["models"] == models and summary["states"] == 25 * models
    assert summary["states_per_model"] == 25 and summary["stored_states"] == 26 * models


@pytest.mark.parametrize("case", ["not-a-zoo", "epochs-0", "out-exists"])
def test_bad_input_is_one_line_exit_2(case, source, tmp_path):
    out = tmp_path / "twin"
    zoo, epochs = str(source), "2"
    if case == "not-a-zoo":
        zoo = str(tmp_path)
    elif case == "epochs-0":
        epochs = "0"
    else:
        out.mkdir()
    result = CliRunner().invoke(cli(), ["sparsify", zoo, "--epochs", epochs, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and result.output.startswith("error:")
    assert case == "out-exists" or not out.exists()
    assert not (tmp_path / "twin.partial").exists()


def test_conv_zoo_twin_with_dropout_verifies_and_sparsifies(tmp_path_factory):
    """The CNN path (Conv2d layers, seeded dropout): a 2-model digits zoo, 2 twin epochs."""
    from modelzoo.run import generate
    from modelzoo.spec import load_spec

    spec = load_spec("digits_seed", ["training.epochs=1", "seeds.range=[1,2]",
                                     "training.batch_size=100", "training.dropout=0.25",
                                     "training.lr=0.01"])  # fmt: skip
    source = generate(spec, tmp_path_factory.mktemp("cnn"), executor="local").zoo_dir
    out = tmp_path_factory.mktemp("cnn_twin") / "digits_sparse"
    result = CliRunner().invoke(cli(), ["sparsify", str(source), "--epochs", "2", "--out",
                                        str(out), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(cli(), ["verify", str(out)]).exit_code == 0
    tw = open_zoo(out)
    assert any(len(s.shape) == 4 for s in tw.layout)  # conv weights are in the twin
    for model_id in tw.model_ids:
        sparsity = tw.metrics[tw.metrics.model_id == model_id].sort_values("epoch")["sparsity"]
        assert sparsity.iloc[-1] > sparsity.iloc[0]


def _tiny_net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3)).double()


def test_wrapper_training_output_is_mean_plus_scaled_noise_from_its_generator():
    from modelzoo.sparsify import VariationalDropout

    net = _tiny_net()
    wrapper = VariationalDropout(net, torch.Generator().manual_seed(7)).double().train()
    x = torch.randn(4, 1, 4, 4, dtype=torch.float64)
    got = wrapper(x)
    replay = torch.Generator().manual_seed(7)  # the same draws, in layer order
    conv, linear = net[0], net[2]
    w, s = conv.weight.detach(), wrapper.log_sigma2["0"].detach()
    alpha = torch.exp(torch.clamp(s - torch.log(w**2), -10, 10))
    mean = nn.functional.conv2d(x, w, conv.bias.detach())
    var = nn.functional.conv2d(x**2, alpha * w**2)
    h = mean + torch.sqrt(var + 1e-15) * torch.randn(
        mean.shape, generator=replay, dtype=torch.float64
    )
    h = h.flatten(1)
    w, s = linear.weight.detach(), wrapper.log_sigma2["2"].detach()
    alpha = torch.exp(torch.clamp(s - torch.log(w**2), -10, 10))
    mean = h @ w.T + linear.bias.detach()
    var = (h**2) @ (alpha * w**2).T
    expected = mean + torch.sqrt(var + 1e-15) * torch.randn(
        mean.shape, generator=replay, dtype=torch.float64
    )
    torch.testing.assert_close(got.detach(), expected)


def test_eval_prunes_exactly_where_log_alpha_exceeds_3_and_kl_sums_layers():
    from modelzoo.sparsify import VariationalDropout

    net = _tiny_net()
    wrapper = VariationalDropout(net, torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        for p in wrapper.log_sigma2.values():
            p.copy_(torch.randn(p.shape, dtype=torch.float64) * 3 - 2)
    state = wrapper.pruned_state()
    for name, module in (("0", net[0]), ("2", net[2])):
        w = module.weight.detach().numpy()
        la = np.clip(wrapper.log_sigma2[name].detach().numpy() - np.log(w**2), -10, 10)
        np.testing.assert_array_equal(state[f"{name}.weight"].numpy(), np.where(la > 3, 0.0, w))
        torch.testing.assert_close(state[f"{name}.bias"], module.bias.detach())  # biases kept
    x = torch.randn(5, 1, 4, 4, dtype=torch.float64)
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3)).double()
    plain.load_state_dict(state)
    torch.testing.assert_close(wrapper.eval()(x), plain(x))
    k1, k2, k3 = 0.63576, 1.87320, 1.48695
    total = 0.0
    for name, module in (("0", net[0]), ("2", net[2])):
        w = module.weight.detach().numpy()
        la = np.clip(wrapper.log_sigma2[name].detach().numpy() - np.log(w**2), -10, 10)
        total -= np.sum(k1 / (1 + np.exp(-(k2 + k3 * la))) - 0.5 * np.log1p(np.exp(-la)) - k1)
    assert float(wrapper.kl().detach()) == pytest.approx(total, rel=1e-10)


def test_kl_weight_ramps_as_the_repository():
    from modelzoo.sparsify.vd import kl_weight

    assert kl_weight(1, 25) == 0.0
    assert kl_weight(25, 25) == pytest.approx(0.01 * 24 / 25)
    assert kl_weight(10_000, 2) == 1.0


def test_interrupted_twin_resumes_to_the_same_weights(source, twin, tmp_path, monkeypatch):
    """One shard per model; the run dies on the second model; the rerun finishes from
    <out>.partial and stores exactly what the uninterrupted run stored."""
    from modelzoo.sparsify import twin as twin_module

    monkeypatch.setattr(twin_module, "SHARD_BYTES", 1)
    real, calls = twin_module.sparsify_model, []

    def dies_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / twin.name
    monkeypatch.setattr(twin_module, "sparsify_model", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        twin_module.sparsify(source, out, epochs=EPOCHS, progress=False)
    assert not out.exists() and (tmp_path / (twin.name + ".partial")).is_dir()
    with pytest.raises(Exception, match="other settings"):  # a different seed is not mixed in
        twin_module.sparsify(source, out, epochs=EPOCHS, seed=5, progress=False)
    resumed = []

    def counted(*args, **kwargs):
        resumed.append(args[1].model_id)
        return real(*args, **kwargs)

    monkeypatch.setattr(twin_module, "sparsify_model", counted)
    twin_module.sparsify(source, out, epochs=EPOCHS, progress=False)
    np.testing.assert_array_equal(open_zoo(out).weights(), open_zoo(twin).weights())
    assert resumed == [int(i) for i in open_zoo(source).model_ids[1:]]  # model 0 kept, not redone


def test_another_commands_work_folder_is_not_mixed_into_a_twin(source, tmp_path):
    """An interrupted train-ae on the same name keeps its checkpoints: sparsify refuses it."""
    from modelzoo.outdir import claimed
    from modelzoo.sparsify import twin as twin_module

    out = tmp_path / "twin"
    with pytest.raises(KeyboardInterrupt), claimed(out, "train-ae", keep_on_failure=True) as work:
        (work / "checkpoint.safetensors").write_text("an hour")
        raise KeyboardInterrupt
    with pytest.raises(Exception, match="another modelzoo command"):
        twin_module.sparsify(source, out, epochs=EPOCHS, progress=False)
    assert sorted(p.name for p in (tmp_path / "twin.partial").iterdir()) == [
        ".modelzoo-command", "checkpoint.safetensors"]
