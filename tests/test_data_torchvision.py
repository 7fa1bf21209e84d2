"""The torchvision-backed datasets, loaded through torchvision's real readers from tiny fixture
files written here in each dataset's real on-disk format (IDX, pickled CIFAR batches, SVHN .mat,
STL-10 binaries, USPS bz2 text, an EuroSAT image folder). No network is used.

torchvision checks CIFAR, SVHN and STL-10 files against the MD5 sums of the official releases,
which fixtures cannot match; ``check_md5`` is patched to pass for the loading tests, and one test
keeps it to show a checksum failure is reported in one line.
"""

from __future__ import annotations

import bz2
import pickle
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modelzoo._torchvision import import_torchvision
from modelzoo.data import DataConfig, input_shape, load_training_data
from modelzoo.errors import DataError

TV_DATASETS = ["mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "stl10", "usps", "eurosat"]
EUROSAT_CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip


def pixels(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def cycling_labels(n: int, classes: int, offset: int = 0) -> np.ndarray:
    return ((np.arange(n) + offset) % classes).astype(np.uint8)


# --- writers for the real on-disk formats ---------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX (MNIST) file: zero, zero, type code 0x08 (uint8), rank, big-endian int32 dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist_like(data_dir: Path, folder: str, n_train: int = 30, n_test: int = 10) -> dict:
    raw = data_dir / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train_images": pixels((n_train, 28, 28), 1),
        "train_labels": cycling_labels(n_train, 10, 5),
        "test_images": pixels((n_test, 28, 28), 2),
        "test_labels": cycling_labels(n_test, 10),
    }
    write_idx(raw / "train-images-idx3-ubyte", arrays["train_images"])
    write_idx(raw / "train-labels-idx1-ubyte", arrays["train_labels"])
    write_idx(raw / "t10k-images-idx3-ubyte", arrays["test_images"])
    write_idx(raw / "t10k-labels-idx1-ubyte", arrays["test_labels"])
    return arrays


def write_pickle(path: Path, content: dict) -> None:
    with path.open("wb") as file:
        pickle.dump(content, file)


def write_cifar10(data_dir: Path) -> dict:
    """Five train batches and a test batch: ``data`` rows are 3072 bytes, R then G then B planes."""
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir()
    train = pixels((20, 3, 32, 32), 3)
    labels = cycling_labels(20, 10).tolist()
    for batch in range(5):
        rows = slice(4 * batch, 4 * batch + 4)
        write_pickle(
            folder / f"data_batch_{batch + 1}",
            {"data": train[rows].reshape(4, -1), "labels": labels[rows]},
        )
    test = pixels((10, 3, 32, 32), 4)
    write_pickle(folder / "test_batch", {"data": test.reshape(10, -1), "labels": list(range(10))})
    names = ["airplane", "automobile", "bird", "cat", "deer"]
    names += ["dog", "frog", "horse", "ship", "truck"]
    write_pickle(folder / "batches.meta", {"label_names": names})
    return {"train_images": train, "train_labels": np.array(labels), "test_images": test}


def write_cifar100(data_dir: Path) -> dict:
    folder = data_dir / "cifar-100-python"
    folder.mkdir()
    train, test = pixels((20, 3, 32, 32), 5), pixels((10, 3, 32, 32), 6)
    train_labels = [5 * i for i in range(20)]
    write_pickle(folder / "train", {"data": train.reshape(20, -1), "fine_labels": train_labels})
    write_pickle(folder / "test", {"data": test.reshape(10, -1), "fine_labels": [99] * 10})
    write_pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)]})
    return {"train_images": train, "train_labels": np.array(train_labels), "test_images": test}


def write_svhn(data_dir: Path) -> dict:
    """MATLAB files with ``X`` as [32, 32, 3, N] and ``y`` as [N, 1], digit 0 stored as 10."""
    from scipy.io import savemat

    folder = data_dir / "svhn"
    folder.mkdir()
    arrays = {}
    for split, n, seed in (("train", 20, 7), ("test", 10, 8)):
        images = pixels((n, 3, 32, 32), seed)
        digits = cycling_labels(n, 10)
        stored = np.where(digits == 0, 10, digits).reshape(n, 1)
        savemat(folder / f"{split}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": stored})
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, digits
    return arrays


def write_stl10(data_dir: Path) -> dict:
    """Raw uint8 binaries, each image stored column-major ([3, W, H]); labels 1..10."""
    folder = data_dir / "stl10_binary"
    folder.mkdir()
    arrays = {}
    for split, n, seed in (("train", 10, 9), ("test", 10, 10), ("unlabeled", 1, 11)):
        images = pixels((n, 3, 96, 96), seed)
        (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        arrays[f"{split}_images"] = images
        if split != "unlabeled":
            labels = cycling_labels(n, 10, 3)
            (folder / f"{split}_y.bin").write_bytes((labels + 1).tobytes())
            arrays[f"{split}_labels"] = labels
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    return arrays


def write_usps(data_dir: Path) -> dict:
    """bz2-compressed libsvm text ``label index:value ...``: labels 1..10, values in [-1, 1]."""
    folder = data_dir / "usps"
    folder.mkdir()
    arrays = {}
    for filename, split, n, seed in (("usps.bz2", "train", 20, 12), ("usps.t.bz2", "test", 10, 13)):
        values = np.random.default_rng(seed).uniform(-1, 1, size=(n, 256)).astype(np.float32)
        labels = cycling_labels(n, 10)
        lines = [
            f"{label + 1} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(row))
            for label, row in zip(labels, values)
        ]
        (folder / filename).write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
        stored = np.array([[float(f"{v:.6f}") for v in row] for row in values], dtype=np.float32)
        arrays[f"{split}_images"] = ((stored + 1) / 2 * 255).astype(np.uint8).reshape(n, 1, 16, 16)
        arrays[f"{split}_labels"] = labels
    return arrays


def write_eurosat(data_dir: Path, per_class: int = 5) -> dict:
    """ImageFolder layout ``eurosat/2750/<Class>/<Class>_<i>.png`` of 64x64 RGB images (the real
    files are JPEG; PNG keeps the pixel check exact and goes through the same PIL path)."""
    root = data_dir / "eurosat" / "2750"
    for label, name in enumerate(EUROSAT_CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = np.full((64, 64, 3), (label * 20, i * 40, 7), dtype=np.uint8)
            Image.fromarray(image).save(root / name / f"{name}_{i + 1}.png")
    return {}


WRITERS = {
    "mnist": lambda d: write_mnist_like(d, "MNIST"),
    "fashion_mnist": lambda d: write_mnist_like(d, "FashionMNIST"),
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
    "svhn": write_svhn,
    "stl10": write_stl10,
    "usps": write_usps,
    "eurosat": write_eurosat,
}


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    """One data folder holding every dataset, written once for the module."""
    data_dir = tmp_path_factory.mktemp("data")
    yield data_dir, {name: write(data_dir) for name, write in WRITERS.items()}
    load_training_data.cache_clear()  # type: ignore[attr-defined]


@pytest.fixture
def fixtures(data_files: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    """The fixture folder, with torchvision's MD5 check patched to pass for this test."""
    monkeypatch.setattr(import_torchvision().datasets.utils, "check_md5", lambda *a, **k: True)
    return data_files


def config(data_dir: Path, name: str, **fields: object) -> DataConfig:
    return DataConfig(name, data_dir=str(data_dir), download=False, **fields)  # type: ignore[arg-type]


# --- loading --------------------------------------------------------------------------------------

SIZES = {
    "mnist": (30, 10, (1, 28, 28)),
    "fashion_mnist": (30, 10, (1, 28, 28)),
    "cifar10": (20, 10, (3, 32, 32)),
    "cifar100": (20, 10, (3, 32, 32)),
    "svhn": (20, 10, (3, 32, 32)),
    "stl10": (10, 10, (3, 96, 96)),
    "usps": (20, 10, (1, 16, 16)),
    "eurosat": (40, 10, (3, 64, 64)),
}


@pytest.mark.parametrize("name", TV_DATASETS)
def test_loads_fixture_files_in_the_real_format(name: str, fixtures: tuple[Path, dict]) -> None:
    data_dir, arrays = fixtures
    data = load_training_data(config(data_dir, name))
    n_train, n_test, shape = SIZES[name]
    assert data.train.images.shape == (n_train, *shape)
    assert data.test.images.shape == (n_test, *shape)
    for part in (data.train, data.test):
        assert part.images.dtype == torch.float32 and part.images.is_contiguous()
        assert part.labels.dtype == torch.int64
        assert part.images.min() >= 0.0 and part.images.max() <= 1.0
    expected = arrays[name]
    for split in ("train", "test"):
        if f"{split}_images" in expected:
            stored = torch.from_numpy(expected[f"{split}_images"]).float() / 255
            torch.testing.assert_close(getattr(data, split).images, stored.reshape(-1, *shape))
        if f"{split}_labels" in expected:
            assert getattr(data, split).labels.tolist() == expected[f"{split}_labels"].tolist()


def test_class_names_come_from_the_files(fixtures: tuple[Path, dict]) -> None:
    data_dir, _ = fixtures
    assert load_training_data(config(data_dir, "mnist")).train.classes[0] == "0 - zero"
    assert load_training_data(config(data_dir, "cifar10")).train.classes[1] == "automobile"
    assert load_training_data(config(data_dir, "cifar100")).test.labels.tolist() == [99] * 10
    assert load_training_data(config(data_dir, "eurosat")).train.classes == EUROSAT_CLASSES
    assert load_training_data(config(data_dir, "stl10")).train.classes[2] == "car"


def test_eurosat_split_is_stratified_80_20(fixtures: tuple[Path, dict]) -> None:
    data_dir, _ = fixtures
    data = load_training_data(config(data_dir, "eurosat"))
    assert data.train.labels.bincount().tolist() == [4] * 10
    assert data.test.labels.bincount().tolist() == [1] * 10
    # each fixture image is one flat colour: red encodes the class
    assert torch.equal(
        (data.train.images[:, 0, 0, 0] * 255).round().long() // 20, data.train.labels
    )
    reseeded = load_training_data(config(data_dir, "eurosat", options={"seed": 1}))
    assert not torch.equal(reseeded.test.images, data.test.images)


def test_resize_grayscale_and_normalisation(fixtures: tuple[Path, dict]) -> None:
    data_dir, _ = fixtures
    base = load_training_data(config(data_dir, "cifar10"))
    data = load_training_data(config(data_dir, "cifar10", resize=28, grayscale=True))
    assert data.train.images.shape == (20, 1, 28, 28)
    assert data.test.images.shape == (10, 1, 28, 28)
    normed = load_training_data(
        config(data_dir, "cifar10", normalize="dataset", train_fraction=0.75)
    )
    assert normed.validation is not None and len(normed.validation) == 5
    assert normed.train.images.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    torch.testing.assert_close(
        normed.train.images.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4, rtol=0
    )
    # the test part is normalised with the train part's statistics, not its own
    assert normed.test.images.mean(dim=(0, 2, 3)).abs().max() > 1e-3
    mean = base.train.images.mean(dim=(0, 2, 3))  # sanity: raw data is not centred already
    assert (mean - 0.5).abs().max() < 0.05
    grey_rgb = load_training_data(config(data_dir, "mnist", resize=32, rgb=True))
    assert grey_rgb.train.images.shape == (30, 3, 32, 32)


CONVERSIONS = [
    {},
    {"resize": 28},
    {"resize": 12, "grayscale": True},
    {"rgb": True, "normalize": "imagenet"},
    {"grayscale": True, "rgb": True, "resize": 8, "train_fraction": 0.5},
]


@pytest.mark.parametrize("fields", CONVERSIONS)
@pytest.mark.parametrize("name", TV_DATASETS)
def test_input_shape_matches_loaded_shapes(
    name: str, fields: dict, fixtures: tuple[Path, dict]
) -> None:
    data_dir, _ = fixtures
    cfg = config(data_dir, name, **fields)
    data = load_training_data(cfg)
    for part in (data.train, data.validation, data.test):
        if part is not None:
            assert tuple(part.images.shape[1:]) == input_shape(cfg)


# --- absent, undownloadable and damaged files -----------------------------------------------------

EXPECTED_FIRST_FILE = {
    "mnist": ("MNIST", "MNIST/raw/train-images-idx3-ubyte"),
    "fashion_mnist": ("Fashion-MNIST", "FashionMNIST/raw/train-images-idx3-ubyte"),
    "cifar10": ("CIFAR-10", "cifar-10-batches-py/data_batch_1"),
    "cifar100": ("CIFAR-100", "cifar-100-python/train"),
    "svhn": ("SVHN", "svhn/train_32x32.mat"),
    "stl10": ("STL-10", "stl10_binary/train_X.bin"),
    "usps": ("USPS", "usps/usps.bz2"),
    "eurosat": ("EuroSAT", "eurosat/2750"),
}


@pytest.mark.parametrize("name", TV_DATASETS)
def test_missing_files_without_download(name: str, tmp_path: Path) -> None:
    title, expected = EXPECTED_FIRST_FILE[name]
    with pytest.raises(DataError) as caught:
        load_training_data(config(tmp_path, name))
    assert str(caught.value) == (
        f"{title} not found under {tmp_path} (expected {expected}); downloading is off. "
        "Put the files there or pass --data-dir DIR."
    )


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every URL fails at once, as on a machine without network."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize("name", TV_DATASETS)
def test_failed_download_is_one_line(name: str, tmp_path: Path) -> None:
    title, expected = EXPECTED_FIRST_FILE[name]
    started = time.monotonic()
    with pytest.raises(DataError) as caught:
        load_training_data(DataConfig(name, data_dir=str(tmp_path), download=True))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{title} not found under {tmp_path} (expected {expected}); ")
    assert "download failed: <urlopen error [Errno -3] Temporary failure" in message
    assert message.endswith("Put the files there or pass --data-dir DIR.")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert time.monotonic() - started < 5
    assert socket.getdefaulttimeout() is None  # the download timeout is put back


def test_truncated_file_is_reported_as_unreadable(tmp_path: Path) -> None:
    write_mnist_like(tmp_path, "MNIST")
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"^MNIST files under .* cannot be read \(.*\); replace"):
        load_training_data(config(tmp_path, "mnist"))


def test_checksum_mismatch_is_reported_as_unreadable(tmp_path: Path) -> None:
    write_cifar10(tmp_path)  # real torchvision MD5 check: fixture bytes do not match the release
    with pytest.raises(DataError, match="fails torchvision's checksum check") as caught:
        load_training_data(config(tmp_path, "cifar10"))
    assert "\n" not in str(caught.value)


def test_files_of_the_wrong_shape_are_reported(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", pixels((4, 20, 20), 0))
    write_idx(raw / "train-labels-idx1-ubyte", cycling_labels(4, 10))
    write_idx(raw / "t10k-images-idx3-ubyte", pixels((2, 20, 20), 1))
    write_idx(raw / "t10k-labels-idx1-ubyte", cycling_labels(2, 10))
    with pytest.raises(DataError, match=r"hold train images of shape \(4, 1, 20, 20\)"):
        load_training_data(config(tmp_path, "mnist"))
