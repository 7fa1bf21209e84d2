"""modelzoo.data without any dataset files: the registry, config checks, preprocessing, splits and
the two datasets that need no files (generated ``tetris``, scikit-learn's ``digits``).

The torchvision-backed datasets are tested on real-format fixture files in test_data_torchvision.py.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from modelzoo._torchvision import import_torchvision
from modelzoo.data import (
    DataConfig,
    ImageData,
    dataset_info,
    input_shape,
    list_datasets,
    load_training_data,
    num_classes,
    resolve_data_dir,
)
from modelzoo.data import preprocess as pre
from modelzoo.data.generated import TETROMINOES, tetris_placements, tetris_rotations
from modelzoo.errors import DataError, ModelZooError

ALL_DATASETS = [
    "cifar10",
    "cifar100",
    "digits",
    "eurosat",
    "fashion_mnist",
    "mnist",
    "stl10",
    "svhn",
    "tetris",
    "tiny_imagenet",
    "usps",
]


def tetris(**options: object) -> DataConfig:
    return DataConfig("tetris", options=options)


# --- registry -------------------------------------------------------------------------------------


def test_registry_lists_every_dataset_with_its_facts() -> None:
    assert list_datasets() == ALL_DATASETS
    assert num_classes("cifar100") == 100
    assert num_classes("tetris") == 4
    info = dataset_info("mnist")
    assert (info.native_shape, info.train_size, info.test_size) == ((1, 28, 28), 60000, 10000)
    assert dataset_info("eurosat").options == {"seed": 0}


def test_unknown_dataset_names_the_choices() -> None:
    with pytest.raises(DataError) as caught:
        load_training_data(DataConfig("mnsit"))
    message = str(caught.value)
    assert message.startswith("unknown dataset 'mnsit'; choose one of: cifar10, cifar100, digits")
    assert "did you mean 'mnist'?" in message
    with pytest.raises(DataError, match="unknown dataset"):
        input_shape(DataConfig("imagenet"))


def test_unknown_option_names_the_valid_options() -> None:
    with pytest.raises(
        DataError, match=r"no option 'sede'; valid options: noise, rotate, seed, test_size"
    ):
        input_shape(tetris(sede=1))
    with pytest.raises(DataError, match=r"'mnist' has no option 'seed'; valid options: none"):
        input_shape(DataConfig("mnist", options={"seed": 1}))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (DataConfig("tetris", train_fraction=0.0), "train_fraction must be in"),
        (DataConfig("tetris", train_fraction=1.5), "train_fraction must be in"),
        (DataConfig("tetris", split_seed=-1), "split_seed"),
        (DataConfig("tetris", resize=0), "resize must be a positive integer"),
        (DataConfig("tetris", resize=2.5), "resize must be a positive integer"),  # type: ignore[arg-type]
        (DataConfig("tetris", grayscale="yes"), "grayscale must be true or false"),  # type: ignore[arg-type]
        (DataConfig("mnist", normalize="imagenet"), "needs 3-channel images; set rgb"),
        (DataConfig("mnist", normalize="z-score"), "normalize must be"),
        (DataConfig("cifar10", normalize=((0.5,) * 2, (0.2,) * 2)), "1 or 3 values"),
        (DataConfig("mnist", normalize=((0.5,), (0.0,))), "std values must be positive"),
        (tetris(train_size="10"), "option 'train_size' must be int"),
        (tetris(train_size=True), "option 'train_size' must be int"),
        (DataConfig("tetris", options=5), "options must be a mapping"),  # type: ignore[arg-type]
    ],
)
def test_bad_config_values_are_one_line_data_errors(config: DataConfig, message: str) -> None:
    with pytest.raises(DataError, match=message) as caught:
        input_shape(config)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"train_size": 0}, "'train_size' must be at least 1"),
        ({"noise": -0.1}, "'noise' must be >= 0"),
        ({"seed": -3}, "'seed' must be >= 0"),
    ],
)
def test_bad_tetris_option_values(options: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_training_data(tetris(**options))


def test_config_is_hashable_whatever_spelling_yaml_gives() -> None:
    from_yaml = DataConfig("tetris", normalize=[[0.5], [0.25]], options={"seed": 1, "noise": 0.0})  # type: ignore[arg-type]
    canonical = DataConfig(
        "tetris", normalize=((0.5,), (0.25,)), options=(("noise", 0.0), ("seed", 1))
    )
    assert from_yaml == canonical
    assert hash(from_yaml) == hash(canonical)
    assert DataConfig("tetris", data_dir=Path("/x")).data_dir == "/x"  # type: ignore[arg-type]


def test_data_dir_defaults_to_env_then_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELZOO_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(str(tmp_path / "given")) == tmp_path / "given"
    monkeypatch.delenv("MODELZOO_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path / ".cache" / "modelzoo" / "data"
    with pytest.raises(DataError, match=rf"MNIST not found under {tmp_path}/\.cache/modelzoo/data"):
        load_training_data(DataConfig("mnist", download=False))


# --- input_shape ----------------------------------------------------------------------------------

CONVERSIONS = list(itertools.product([None, 12], [False, True], [False, True]))


@pytest.mark.parametrize("name", ALL_DATASETS)
def test_input_shape_needs_no_files(name: str, tmp_path: Path) -> None:
    info = dataset_info(name)
    for resize, grayscale, rgb in CONVERSIONS:
        config = DataConfig(
            name, data_dir=str(tmp_path / "absent"), resize=resize, grayscale=grayscale, rgb=rgb
        )
        channels = 1 if info.channels == 1 or grayscale else 3
        channels = 3 if rgb else channels
        side = resize or info.size
        assert input_shape(config) == (channels, side, side)
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize(("resize", "grayscale", "rgb"), CONVERSIONS)
@pytest.mark.parametrize("name", ["tetris", "digits"])
def test_input_shape_matches_loaded_shapes(
    name: str, resize: int | None, grayscale: bool, rgb: bool
) -> None:
    config = DataConfig(name, resize=resize, grayscale=grayscale, rgb=rgb, train_fraction=0.9)
    data = load_training_data(config)
    for part in (data.train, data.validation, data.test):
        assert part is not None
        assert tuple(part.images.shape[1:]) == input_shape(config)


# --- tetris ---------------------------------------------------------------------------------------


def test_tetris_shapes_dtypes_and_balanced_classes() -> None:
    data = load_training_data(tetris())
    assert data.train.images.shape == (1000, 1, 4, 4)
    assert data.test.images.shape == (250, 1, 4, 4)
    assert data.train.images.dtype == torch.float32
    assert data.train.labels.dtype == torch.int64
    assert data.train.images.is_contiguous()
    assert data.train.classes == ("L", "T", "S", "O")
    assert data.train.labels.bincount().tolist() == [250, 250, 250, 250]
    assert data.test.labels.bincount().tolist() == [63, 63, 62, 62]  # 250 = 4 * 62 + 2
    assert data.validation is None
    assert not torch.equal(data.train.labels[:250], data.train.labels.sort().values[:250])


def test_tetris_is_deterministic_per_seed() -> None:
    first = load_training_data(tetris(seed=3))
    load_training_data.cache_clear()  # type: ignore[attr-defined]
    again = load_training_data(tetris(seed=3))
    other = load_training_data(tetris(seed=4))
    assert first is not again
    assert torch.equal(first.train.images, again.train.images)
    assert torch.equal(first.test.labels, again.test.labels)
    assert not torch.equal(first.train.images, other.train.images)
    # train and test come from different streams: the test set is not the train set's beginning
    assert not torch.equal(first.train.images[:250], first.test.images)


def test_tetris_rotations_and_placements() -> None:
    counts = {name: len(tetris_rotations(name)) for name in TETROMINOES}
    assert counts == {"L": 4, "T": 4, "S": 2, "O": 1}
    assert [len(tetris_placements(r)) for r in tetris_rotations("L")] == [6, 6, 6, 6]
    assert len(tetris_placements(tetris_rotations("O")[0])) == 9


def valid_masks(name: str) -> set[bytes]:
    return {
        placed.astype(np.uint8).tobytes()
        for rotation in tetris_rotations(name)
        for placed in tetris_placements(rotation)
    }


def test_every_tetris_sample_is_a_placed_shape_plus_noise() -> None:
    clean = load_training_data(tetris(noise=0.0, train_size=4000, rotate=True, translate=True))
    noisy = load_training_data(tetris(noise=0.1, train_size=4000, rotate=True, translate=True))
    assert torch.equal(clean.train.labels, noisy.train.labels)
    seen: dict[str, set[bytes]] = {name: set() for name in TETROMINOES}
    for image, label in zip(clean.train.images.numpy(), clean.train.labels.tolist()):
        name = clean.train.classes[label]
        mask = image[0].astype(np.uint8).tobytes()
        assert set(np.unique(image)) <= {0.0, 1.0}
        assert mask in valid_masks(name), f"sample is not a placed {name}"
        seen[name].add(mask)
    # with 1000 samples per class every rotation and translation turns up
    assert all(seen[name] == valid_masks(name) for name in TETROMINOES)
    noise = noisy.train.images - clean.train.images
    assert abs(noise.mean().item()) < 0.005
    assert noise.std().item() == pytest.approx(0.1, rel=0.02)


def test_tetris_default_is_one_canonical_shape_per_class() -> None:
    data = load_training_data(tetris(noise=0.0))
    for label, name in enumerate(TETROMINOES):
        images = data.train.images[data.train.labels == label, 0]
        canonical = tetris_placements(tetris_rotations(name)[0])[0]
        assert images.shape[0] == 250
        assert all(np.array_equal(image, canonical) for image in images.numpy())


def test_tetris_draws_rotations_uniformly() -> None:
    data = load_training_data(tetris(noise=0.0, train_size=4000, rotate=True, translate=True))
    images, labels = data.train.images.numpy(), data.train.labels.numpy()
    l_images = images[labels == 0, 0]
    per_rotation = [
        sum(
            any(np.array_equal(image, placed) for placed in tetris_placements(rotation))
            for image in l_images
        )
        for rotation in tetris_rotations("L")
    ]
    assert sum(per_rotation) == 1000
    assert all(200 <= count <= 300 for count in per_rotation)  # 250 expected each


def test_tetris_unseen_placements_appear_only_in_the_test_split() -> None:
    data = load_training_data(tetris(noise=0.0, train_size=2000, translate=True, unseen=0.3))
    for label, name in enumerate(TETROMINOES):
        every = {p.tobytes() for p in tetris_placements(tetris_rotations(name)[0])}
        train = {i.numpy().tobytes() for i in data.train.images[data.train.labels == label, 0]}
        test = {i.numpy().tobytes() for i in data.test.images[data.test.labels == label, 0]}
        assert not train & test and train | test == every  # 2000 draws see every train placement
        assert len(every - train) == round(0.3 * len(every))  # 2 of 6 (L, T, S), 3 of 9 (O)
    same = load_training_data(tetris(noise=0.0, train_size=2000, translate=True, unseen=0.3))
    assert torch.equal(same.test.images, data.test.images)
    plain = load_training_data(tetris(noise=0.0, translate=True))
    assert not torch.equal(plain.test.images, data.test.images)


@pytest.mark.parametrize("options, message", [
    ({"unseen": 0.3}, "shape L has a single placement"),  # neither rotate nor translate
    ({"unseen": 0.3, "rotate": True}, "shape O has a single placement"),  # O: one rotation
    ({"unseen": 1.0, "translate": True}, "expected a fraction in [0, 1)"),
    ({"unseen": -0.1}, "unseen"),
])  # fmt: skip
def test_tetris_unseen_is_checked(options: dict, message: str) -> None:
    with pytest.raises(ModelZooError, match=re.escape(message) if "[" in message else message):
        load_training_data(tetris(**options))


def test_tetris_sizes_follow_options() -> None:
    data = load_training_data(tetris(train_size=10, test_size=3))
    assert data.train.labels.bincount().tolist() == [3, 3, 2, 2]
    assert len(data.test) == 3


# --- digits ---------------------------------------------------------------------------------------


def test_digits_split_and_scale() -> None:
    data = load_training_data(DataConfig("digits"))
    assert (len(data.train), len(data.test)) == (1437, 360)
    assert data.train.images.shape == (1437, 1, 8, 8)
    assert data.train.images.min() == 0.0
    assert data.train.images.max() == 1.0
    assert data.train.classes == tuple("0123456789")
    test_counts = data.test.labels.bincount()
    assert test_counts.min() >= 35 and test_counts.max() <= 37  # stratified: ~10% of each class
    other = load_training_data(DataConfig("digits", options={"seed": 1}))
    assert not torch.equal(data.test.labels, other.test.labels)


# --- validation split and normalisation -----------------------------------------------------------


def rows(part: ImageData) -> set[bytes]:
    return {image.numpy().tobytes() for image in part.images}


def test_validation_split_is_disjoint_deterministic_and_complete() -> None:
    full = load_training_data(tetris())
    split = load_training_data(DataConfig("tetris", train_fraction=0.8, options={"seed": 0}))
    assert split.validation is not None
    assert (len(split.train), len(split.validation)) == (800, 200)
    train, validation = rows(split.train), rows(split.validation)
    assert not train & validation
    assert train | validation == rows(full.train)
    assert torch.equal(split.test.images, full.test.images)
    reseeded = load_training_data(DataConfig("tetris", train_fraction=0.8, split_seed=1))
    assert reseeded.validation is not None
    assert rows(reseeded.validation) != validation
    train_idx, val_idx = pre.split_indices(1000, 0.8, 0)
    assert torch.equal(split.validation.images, full.train.images[val_idx])
    assert torch.equal(split.train.labels, full.train.labels[train_idx])


def test_too_small_train_fraction_is_reported() -> None:
    with pytest.raises(DataError, match="leaves an empty part"):
        load_training_data(DataConfig("tetris", train_fraction=0.1, options={"train_size": 4}))


def test_dataset_normalisation_uses_train_statistics_only() -> None:
    raw = load_training_data(DataConfig("digits", train_fraction=0.75))
    normed = load_training_data(DataConfig("digits", train_fraction=0.75, normalize="dataset"))
    assert normed.train.images.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert normed.train.images.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    mean = raw.train.images.double().mean()
    std = raw.train.images.double().std(unbiased=False)
    for before, after in ((raw.validation, normed.validation), (raw.test, normed.test)):
        assert before is not None and after is not None
        expected = ((before.images.double() - mean) / std).float()
        torch.testing.assert_close(after.images, expected)


def test_imagenet_and_explicit_normalisation() -> None:
    raw = load_training_data(DataConfig("digits", rgb=True))
    imagenet = load_training_data(DataConfig("digits", rgb=True, normalize="imagenet"))
    expected = (raw.test.images - torch.tensor(pre.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        pre.IMAGENET_STD
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(imagenet.test.images, expected)
    explicit = load_training_data(DataConfig("digits", normalize=((0.5,), (0.25,))))
    base = load_training_data(DataConfig("digits"))
    torch.testing.assert_close(explicit.train.images, (base.train.images - 0.5) / 0.25)


def test_loads_are_cached_per_config() -> None:
    config = DataConfig("digits", resize=4)
    assert load_training_data(config) is load_training_data(DataConfig("digits", resize=4))
    assert load_training_data.cache_info().hits >= 1  # type: ignore[attr-defined]


# --- preprocessing against torchvision's own transforms ------------------------------------------


def test_grayscale_and_resize_match_torchvision() -> None:
    functional = import_torchvision().transforms.functional
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    scaled = images.float() / 255
    torch.testing.assert_close(
        pre.preprocess(images, grayscale=True), functional.rgb_to_grayscale(scaled)
    )
    torch.testing.assert_close(
        pre.preprocess(images, size=28), functional.resize(scaled, [28, 28], antialias=True)
    )
    grey_rgb = pre.preprocess(images, grayscale=True, rgb=True)
    assert grey_rgb.shape == (5, 3, 32, 32)
    assert torch.equal(grey_rgb[:, 0], grey_rgb[:, 2])


def test_preprocess_in_small_chunks_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.randint(0, 256, (37, 3, 10, 10), dtype=torch.uint8)
    whole = pre.preprocess(images, grayscale=True, rgb=True, size=6)
    monkeypatch.setattr(pre, "_CHUNK_ELEMENTS", 500)
    assert torch.equal(pre.preprocess(images, grayscale=True, rgb=True, size=6), whole)
    mean, std = pre.channel_stats(whole)
    torch.testing.assert_close(mean.float(), whole.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(std.float(), whole.std(dim=(0, 2, 3), unbiased=False))


def test_preprocess_leaves_float_input_untouched() -> None:
    images = torch.rand(4, 1, 8, 8)
    copy = images.clone()
    out = pre.preprocess(images, size=4)
    pre.normalize_(out, torch.tensor([0.5]), torch.tensor([2.0]))
    assert torch.equal(images, copy)


def test_constant_channel_does_not_divide_by_zero() -> None:
    _, std = pre.channel_stats(torch.ones(3, 2, 4, 4))
    assert std.tolist() == [1.0, 1.0]


def test_import_torchvision_gives_working_transforms_and_datasets() -> None:
    tv = import_torchvision()
    resized = tv.transforms.Resize(4, antialias=True)(torch.rand(1, 8, 8))
    assert resized.shape == (1, 4, 4)
    image, label = tv.datasets.FakeData(size=2, image_size=(3, 8, 8), num_classes=3)[0]
    assert tv.transforms.ToTensor()(image).shape == (3, 8, 8)
    assert 0 <= label < 3
    assert import_torchvision() is tv
