"""The Model Zoos dataset (Schürholt et al., NeurIPS 2022 Datasets track; seed 002): its 27 zoos as
bundled specs, the ResNet-18 they train (checked against torchvision's), the training-time
augmentations and the OneCycle schedule (checked against torchvision and torch.optim), BatchNorm
statistics stored with the weights, Tiny ImageNet in its archive's folder layout, and streamed
writing of large tasks (bit-identical to the buffered path)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_data_torchvision import write_cifar10
from torch.nn import functional

from modelzoo import open_zoo
from modelzoo import plan as plan_module
from modelzoo._torchvision import import_torchvision
from modelzoo.architectures import plan_architecture
from modelzoo.cli import main
from modelzoo.data import DataConfig, load_training_data
from modelzoo.nets import build_model, flatten_state, load_flat_state
from modelzoo.plan import plan
from modelzoo.run import generate
from modelzoo.seeding import epoch_order
from modelzoo.spec import load_spec
from modelzoo.train.images import crop_flip, flip_rotate
from modelzoo.train.reference import build_initialised_model, train_reference

# name: (models, stored values per model, epochs, stored states), as the dataset publishes them:
# seed zoos of 1,000 models; hyperparameter zoos of 10 seeds per configuration; CNN states are
# epochs 0-50, ResNet-18 states epochs 1-60 (1-50 for CIFAR-10). ResNet values include the
# BatchNorm running statistics (9,620 for every class count).
MODEL_ZOOS = {
    "mz_mnist_seed": (1000, 2464, 50, 51000),
    "mz_mnist_hyp_fix": (2560, 2464, 50, 130560),
    "mz_mnist_hyp_rand": (2560, 2464, 50, 130560),
    "mz_fashion_seed": (1000, 2464, 50, 51000),
    "mz_fashion_hyp_fix": (2560, 2464, 50, 130560),
    "mz_fashion_hyp_rand": (2560, 2464, 50, 130560),
    "mz_svhn_seed": (1000, 2464, 50, 51000),
    "mz_svhn_hyp_fix": (4320, 2464, 50, 220320),
    "mz_svhn_hyp_rand": (4320, 2464, 50, 220320),
    "mz_usps_seed": (1000, 2464, 50, 51000),
    "mz_usps_hyp_fix": (2560, 2464, 50, 130560),
    "mz_usps_hyp_rand": (2560, 2464, 50, 130560),
    "mz_cifar10_small_seed": (1000, 2864, 50, 51000),
    "mz_cifar10_small_hyp_fix": (1280, 2864, 50, 65280),
    "mz_cifar10_small_hyp_rand": (1280, 2864, 50, 65280),
    "mz_cifar10_medium_seed": (1000, 10853, 50, 51000),
    "mz_cifar10_medium_hyp_fix": (1280, 10853, 50, 65280),
    "mz_cifar10_medium_hyp_rand": (1280, 10853, 50, 65280),
    "mz_stl10_small_seed": (1000, 2864, 50, 51000),
    "mz_stl10_small_hyp_fix": (2560, 2864, 50, 130560),
    "mz_stl10_small_hyp_rand": (2560, 2864, 50, 130560),
    "mz_stl10_medium_seed": (1000, 10853, 50, 51000),
    "mz_stl10_medium_hyp_fix": (2560, 10853, 50, 130560),
    "mz_stl10_medium_hyp_rand": (2560, 10853, 50, 130560),
    "mz_cifar10_resnet18": (1000, 11_173_962 + 9_620, 50, 50000),
    "mz_cifar100_resnet18": (1000, 11_220_132 + 9_620, 60, 60000),
    "mz_tiny_imagenet_resnet18": (1000, 11_271_432 + 9_620, 60, 60000),
}
SPARSE_STATES_PER_MODEL = 25  # the sparse twins' states: the slides' 3,844,360 minus the dense


@pytest.mark.parametrize("name", sorted(MODEL_ZOOS))
def test_each_model_zoo_spec_has_the_published_size(name: str) -> None:
    the_plan = plan(load_spec(name))
    models, values, epochs, states = MODEL_ZOOS[name]
    assert len(the_plan.runs) == models
    assert the_plan.parameters == values
    assert load_spec(name).resolved["training"]["epochs"] == epochs
    assert the_plan.states == states


def test_the_dataset_totals_are_the_slides_numbers() -> None:
    """Slides (seed 002): 27 zoos, 50,360 models, 3,844,360 model states; the dense trajectories
    hold 2,585,360 of them, 25 per model more are the sparsification trajectories."""
    assert len(MODEL_ZOOS) == 27
    models = sum(v[0] for v in MODEL_ZOOS.values())
    dense = sum(v[3] for v in MODEL_ZOOS.values())
    assert models == 50_360 and dense == 2_585_360
    assert dense + SPARSE_STATES_PER_MODEL * models == 3_844_360


def test_resnet_zoos_augment_as_their_published_generators() -> None:
    """CIFAR-10/100: crop + flip; Tiny ImageNet: flip + rotate (the generator script, not the
    paper's "same"; docs/model_zoos.md has the evidence)."""
    augment = {name: load_spec(name).resolved["training"]["augment"]
               for name in MODEL_ZOOS if name.endswith("resnet18")}  # fmt: skip
    assert augment == {"mz_cifar10_resnet18": "crop_flip", "mz_cifar100_resnet18": "crop_flip",
                       "mz_tiny_imagenet_resnet18": "flip_rotate"}  # fmt: skip


# --------------------------------------------------------------------------- ResNet-18


def torchvision_resnet18(num_classes: int) -> torch.nn.Module:
    """torchvision's ResNet-18 with the small-image stem the Model Zoos dataset uses."""
    tv = import_torchvision()
    model = tv.models.resnet18(num_classes=num_classes)
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = torch.nn.Identity()
    return model


@pytest.mark.parametrize("num_classes", [10, 100])
def test_resnet18_is_torchvisions_with_the_small_image_stem(num_classes: int) -> None:
    reference = torchvision_resnet18(num_classes).eval()
    ours = build_model("resnet18", (3, 32, 32), num_classes, activation="relu").eval()
    theirs_state = reference.state_dict()
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in theirs_state.items()
    ]
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    ours.load_state_dict(theirs_state)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=1e-5)


def test_resnet_layout_flattens_parameters_and_buffers_in_state_dict_order() -> None:
    arch = plan_architecture("resnet18", (3, 32, 32), 10)
    reference = torchvision_resnet18(10)
    state = reference.state_dict()
    assert [s.name for s in arch.layout] == list(state)
    assert arch.parameters == sum(v.numel() for v in state.values())
    buffers = {name for name, _ in reference.named_buffers()}
    assert {s.name for s in arch.layout if s.buffer} == buffers
    for module in reference.modules():  # give the buffers values a fresh model does not have
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.num_batches_tracked.fill_(7)
    flat = torch.cat([v.reshape(-1).float() for v in state.values()])
    assert torch.equal(flatten_state(reference, arch.layout), flat)
    fresh = build_model("resnet18", (3, 32, 32), 10, activation="relu")
    load_flat_state(fresh, flat, arch.layout)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key


# --------------------------------------------------------------------------- augmentations


def test_crop_flip_equals_torchvisions_pad_crop_and_flip() -> None:
    tf = import_torchvision().transforms.functional
    images = torch.randn(16, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    ours = crop_flip(images, torch.Generator().manual_seed(5))
    draws = torch.Generator().manual_seed(5)  # the same draws, in the order crop_flip takes them
    dy = torch.randint(0, 9, (16,), generator=draws)
    dx = torch.randint(0, 9, (16,), generator=draws)
    flip = torch.rand(16, generator=draws) < 0.5
    for i in range(16):
        expected = tf.crop(tf.pad(images[i], [4]), int(dy[i]), int(dx[i]), 12, 10)
        if flip[i]:
            expected = tf.hflip(expected)
        assert torch.equal(ours[i], expected), i
    assert 0 < int(flip.sum()) < 16 and len(set(dy.tolist())) > 1


def test_flip_rotate_agrees_with_torchvisions_rotation() -> None:
    """torchvision rotates counter-clockwise by ``angle`` with nearest sampling and zero fill; ours
    samples the same rotation on a grid, so a few pixels on rounding boundaries differ."""
    tv = import_torchvision()
    tf, mode = tv.transforms.functional, tv.transforms.InterpolationMode.NEAREST
    images = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    ours = flip_rotate(images, torch.Generator().manual_seed(9))
    draws = torch.Generator().manual_seed(9)
    flip = torch.rand(12, generator=draws) < 0.5
    degrees = (torch.rand(12, generator=draws) * 2 - 1) * 20
    agree = []
    for i in range(12):
        source = tf.hflip(images[i]) if flip[i] else images[i]
        expected = tf.rotate(source, float(degrees[i]), interpolation=mode, fill=0.0)
        agree.append((ours[i] == expected).float().mean().item())
        wrong_way = tf.rotate(source, -float(degrees[i]), interpolation=mode, fill=0.0)
        if abs(float(degrees[i])) > 5:  # the direction is not a coin toss
            assert (ours[i] == wrong_way).float().mean().item() < agree[-1] - 0.1
    assert min(agree) > 0.9, agree


# --------------------------------------------------------------------------- OneCycle


def test_onecycle_reference_equals_a_plain_torch_loop(tmp_path: Path) -> None:
    """The reference trainer with ``schedule: onecycle`` against torch.optim's own OneCycleLR,
    stepped once per batch over all epochs, on the same initial weights and batch order."""
    spec = load_spec("tetris_seed", ["training.optimizer=sgd", "training.lr=0.5",
                                     "training.momentum=0.9", "training.epochs=3",
                                     "training.schedule=onecycle", "seeds.range=[1, 1]",
                                     "dataset.options.train_size=60",
                                     "execution.engine=reference"])  # fmt: skip
    run = plan(spec).runs[0]
    data = load_training_data(DataConfig.from_section(run.dataset))
    result = train_reference(run, data)
    model = build_initialised_model(run, data)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    n, batch = data.train.images.shape[0], run.training["batch_size"]
    steps = math.ceil(n / batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=3 * steps)
    for epoch in range(1, 4):
        order = epoch_order(run.seed, epoch, n)
        for start in range(0, n, batch):
            index = order[start : start + batch]
            loss = functional.cross_entropy(model(data.train.images[index]),
                                            data.train.labels[index])  # fmt: skip
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    layout = plan_architecture(run.architecture["name"], tuple(data.train.images.shape[1:]),
                               len(data.train.classes)).layout  # fmt: skip
    final = flatten_state(model, layout).numpy()
    np.testing.assert_allclose(result.weights[-1], final, rtol=0, atol=1e-6)
    constant = train_reference(_with(run, schedule="constant"), data)
    assert np.abs(constant.weights[-1] - final).max() > 1e-2  # the schedule matters here


def _with(run, **training):
    return dataclasses.replace(run, training={**run.training, **training})


@pytest.mark.parametrize("setting", ["training.schedule=onecycle", "training.augment=crop_flip",
                                     "architecture.name=resnet18"])  # fmt: skip
def test_the_stacked_engine_refuses_what_it_does_not_implement(setting: str) -> None:
    extra = ["--set", "training.activation=relu"] if "resnet" in setting else []
    result = CliRunner().invoke(main, ["generate", "tetris_seed", "--dry-run", "--no-estimate",
                                       "--set", setting, *extra])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "reference" in result.output and len(result.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- streaming


def _tables(zoo) -> tuple[np.ndarray, object]:
    metrics = zoo.metrics.drop(columns=["seconds"]).sort_values(["model_id", "epoch"])
    return zoo.weights(), metrics.reset_index(drop=True)


def test_streamed_tasks_store_exactly_what_buffered_tasks_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large tasks hand each stored epoch to the writer as it is recorded (from Ray workers
    through the progress actor); forcing that path on a small zoo changes no stored bit."""
    spec = ["seeds.range=[1, 6]", "training.epochs=3", "dataset.options.train_size=200",
            "execution.models_per_task=3"]  # fmt: skip
    generate(load_spec("tetris_seed", spec), tmp_path / "buffered", executor="local")
    monkeypatch.setattr(plan_module, "STREAM_BYTES", 0)
    assert all(task.stream for task in plan(load_spec("tetris_seed", spec)).tasks)
    for executor in ("local", "ray"):
        generate(load_spec("tetris_seed", spec), tmp_path / executor, executor=executor)
    w1, m1 = _tables(open_zoo(tmp_path / "buffered" / "tetris_seed"))
    assert w1.shape == (6, 4, 100)
    for executor in ("local", "ray"):
        w2, m2 = _tables(open_zoo(tmp_path / executor / "tetris_seed"))
        assert np.array_equal(w1, w2, equal_nan=True) and m1.equals(m2), executor


# --------------------------------------------------------------------------- ResNet-18 zoo


@pytest.fixture(scope="module")
def resnet_zoo(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("cifar")
    write_cifar10(data_dir)
    store = tmp_path_factory.mktemp("store")
    spec = load_spec("mz_cifar10_resnet18", ["seeds.range=[1, 1]", "training.epochs=2",
                                             "training.batch_size=8", "dataset.resize=8"])  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:  # the fixture files are not the real release
        patch.setattr(import_torchvision().datasets.utils, "check_md5", lambda *a, **k: True)
        generate(spec, store, executor="local", data_dir=str(data_dir))
        zoo = open_zoo(store / "mz_cifar10_resnet18")
        yield zoo, zoo.data("test", data_dir=str(data_dir))
    load_training_data.cache_clear()  # type: ignore[attr-defined]


def test_a_resnet_zoo_reloads_with_its_batchnorm_statistics(resnet_zoo) -> None:
    """Stored epochs 1-2 (the dataset's convention); every stored test accuracy is reproduced by
    torchvision's ResNet-18 given the stored parameters *and* running statistics."""
    zoo, test = resnet_zoo
    assert list(zoo.epochs) == [1, 2] and (zoo.models["status"] == "ok").all()
    images, labels = test.images, test.labels
    for model_id in zoo.model_ids:
        for epoch in zoo.epochs:
            state = zoo.model(int(model_id), int(epoch)).state_dict()
            assert float(state["bn1.running_var"].sub(1).abs().max()) > 1e-3  # trained statistics
            reference = torchvision_resnet18(10)
            reference.load_state_dict(state)
            with torch.no_grad():
                logits = reference.eval()(images)
            accuracy = int((logits.argmax(1) == labels).sum()) / len(labels)
            stored = zoo.metrics.set_index(["model_id", "epoch"]).loc[(model_id, epoch)]
            assert accuracy == pytest.approx(float(stored["test_acc"]), abs=1e-6)
            loss = float(functional.cross_entropy(logits.double(), labels))
            assert loss == pytest.approx(float(stored["test_loss"]), abs=1e-4)
            for module in reference.modules():  # without the stored statistics: other outputs
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.reset_running_stats()
            with torch.no_grad():
                assert (reference(images) - logits).abs().max() > 1e-3


# --------------------------------------------------------------------------- Tiny ImageNet


def write_tiny_imagenet(root: Path, per_class: int = 1, val: int = 20) -> list[str]:
    """The folder layout of tiny-imagenet-200.zip, with JPEGs of random pixels."""
    from PIL import Image

    base = root / "tiny-imagenet-200"
    wnids = [f"n{index:08d}" for index in range(200, 0, -1)]  # written unsorted, as the original
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("".join(f"{w}\tthing {w[-3:]}, other\n" for w in wnids))
    rng = np.random.default_rng(0)
    for wnid in wnids:
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{wnid}_{k}.JPEG", quality=95)
    lines = []
    for k in range(val):
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(  # a grey one
            base / "val" / "images" / f"val_{k}.JPEG")  # fmt: skip
        lines.append(f"val_{k}.JPEG\t{wnids[k * 7]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return wnids


def test_tiny_imagenet_loads_from_the_archive_layout(tmp_path: Path) -> None:
    wnids = write_tiny_imagenet(tmp_path)
    data = load_training_data(DataConfig("tiny_imagenet", data_dir=str(tmp_path), download=False))
    assert tuple(data.train.images.shape) == (200, 3, 64, 64)
    assert len(data.train.classes) == 200 and data.train.classes[0] == "thing 001"
    order = sorted(wnids)
    assert data.train.labels.tolist() == list(range(200))  # files visited in sorted-wnid order
    expected = [order.index(wnids[k * 7]) for k in range(20)]
    assert data.test.labels.tolist() == expected
    assert tuple(data.test.images.shape) == (20, 3, 64, 64)


def test_tiny_imagenet_with_a_wrong_wnids_file_is_one_clear_line(tmp_path: Path) -> None:
    write_tiny_imagenet(tmp_path)
    (tmp_path / "tiny-imagenet-200" / "wnids.txt").write_text("n1\nn2\n")
    result = CliRunner().invoke(main, ["generate", "mz_tiny_imagenet_resnet18", "--limit", "1",
                                       "--data-dir", str(tmp_path), "--store",
                                       str(tmp_path / "s"), "--executor", "local"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "expected 200" in result.output and not (tmp_path / "s" / "x").exists()


def test_a_reduced_tiny_imagenet_resnet_zoo_trains_end_to_end(tmp_path: Path) -> None:
    write_tiny_imagenet(tmp_path / "data")
    spec = load_spec("mz_tiny_imagenet_resnet18", ["seeds.range=[1, 1]", "training.epochs=1",
                                                   "training.batch_size=50",
                                                   "dataset.resize=8"])  # fmt: skip
    generate(spec, tmp_path / "store", executor="local", data_dir=str(tmp_path / "data"))
    zoo = open_zoo(tmp_path / "store" / "mz_tiny_imagenet_resnet18")
    assert list(zoo.epochs) == [1] and zoo.num_classes == 200
    assert zoo.weights().shape == (1, 1, 11_271_432 + 9_620)
