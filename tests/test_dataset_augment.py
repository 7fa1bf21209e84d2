"""Weight-space augmentations: permutations keep the function, erasing/noise follow the paper,
and every draw is reproducible from the dataset's seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_zoo_helpers import digits_zoo, grid_zoo
from torch.utils.data import DataLoader

from modelzoo import ZooDataset, open_zoo
from modelzoo.architectures import plan_architecture
from modelzoo.augment import Compose, GaussianNoise, PermuteUnits, RandomErase, sample_rng
from modelzoo.errors import ModelZooError
from modelzoo.nets import build_model, flatten_parameters, load_flat_parameters, parameter_layout
from modelzoo.tokens import WeightStructure


def _outputs(name, shape, classes, flat, x, activation="tanh"):
    model = build_model(name, shape, classes, activation=activation).eval()
    load_flat_parameters(model, torch.from_numpy(np.ascontiguousarray(flat)))
    with torch.no_grad():
        return model(x)


def _check_equivalence(name, shape, classes, flat, activation="tanh") -> None:
    plan = plan_architecture(name, shape, classes)
    assert plan.layout == tuple(parameter_layout(build_model(name, shape, classes)))
    structure = WeightStructure.from_plan(plan)
    augment = PermuteUnits(structure)
    x = torch.randn(64, *shape, generator=torch.Generator().manual_seed(0))
    reference = _outputs(name, shape, classes, flat, x, activation)
    for seed in range(3):
        permuted = augment(flat, np.random.default_rng(seed))
        assert not np.array_equal(permuted, flat) and np.array_equal(
            np.sort(permuted), np.sort(flat)
        )
        torch.testing.assert_close(
            _outputs(name, shape, classes, permuted, x, activation), reference, rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_permutation_preserves_the_function_of_zoo_mlps(activation) -> None:
    zoo = open_zoo(grid_zoo())
    model_id = int(zoo.select(activation=activation).model_ids[0])
    _check_equivalence("tetris_mlp", (1, 4, 4), 4, zoo.weights(model_id, 4), activation)


def test_permutation_preserves_the_function_of_zoo_cnns() -> None:
    zoo = open_zoo(digits_zoo())
    _check_equivalence("cnn_tiny", (1, 8, 8), 10, zoo.weights(2, 2))


@pytest.mark.parametrize("name, shape", [("cnn_small", (1, 28, 28)), ("cnn_medium", (3, 32, 32)),
                                         ("cnn_unterthiner", (1, 32, 32))])  # global avg pooling
def test_permutation_preserves_the_function_of_paper_cnns(name, shape) -> None:
    torch.manual_seed(1)
    flat = flatten_parameters(build_model(name, shape, 10)).numpy()
    _check_equivalence(name, shape, 10, flat)


def test_permutation_never_moves_the_classes() -> None:
    zoo = open_zoo(digits_zoo())
    structure = WeightStructure.of(zoo)
    flat = zoo.weights(1, 2)
    permuted = PermuteUnits(structure)(flat, np.random.default_rng(5))
    last = structure.layers[-1]
    np.testing.assert_array_equal(permuted[last.bias_offset :], flat[last.bias_offset :])
    rows = slice(last.weight_offset, last.bias_offset)
    np.testing.assert_array_equal(
        np.sort(permuted[rows].reshape(10, 16), axis=1), np.sort(flat[rows].reshape(10, 16), axis=1)
    )


def test_batched_permutation_draws_one_permutation_per_row() -> None:
    structure = WeightStructure.of(open_zoo(digits_zoo()))
    flat = np.tile(open_zoo(digits_zoo()).weights(0, 2), (4, 1))
    out = PermuteUnits(structure)(flat, np.random.default_rng(0))
    assert out.shape == (4, structure.parameters) and len({row.tobytes() for row in out}) == 4
    pooled = PermuteUnits(structure, pool=2)
    draws = {pooled(flat[0], np.random.default_rng(s)).tobytes() for s in range(20)}
    assert len(draws) == 2
    with pytest.raises(ModelZooError, match="pool"):
        PermuteUnits(structure, pool=0)


def test_random_erase_zeroes_one_contiguous_range() -> None:
    flat = np.arange(1, 1001, dtype=np.float32)
    for seed in range(20):
        out = RandomErase(p=1.0, scale=(0.03, 0.3))(flat, np.random.default_rng(seed))
        zeros = np.flatnonzero(out == 0)
        assert 30 <= zeros.size <= 300 and np.all(np.diff(zeros) == 1)
        np.testing.assert_array_equal(out[out != 0], flat[out != 0])
    np.testing.assert_array_equal(RandomErase(p=0.0)(flat, np.random.default_rng(0)), flat)
    hits = [
        not np.array_equal(RandomErase()(flat, np.random.default_rng(s)), flat) for s in range(400)
    ]
    assert 0.4 < np.mean(hits) < 0.6
    with pytest.raises(ModelZooError, match="RandomErase"):
        RandomErase(p=2.0)


def test_gaussian_noise_is_zero_mean_with_the_given_std() -> None:
    flat = np.zeros(200_000, dtype=np.float32)
    out = GaussianNoise(0.05)(flat, np.random.default_rng(0))
    assert out.dtype == np.float32 and abs(out.mean()) < 1e-3 and abs(out.std() - 0.05) < 1e-3


def test_augmented_samples_are_reproducible_and_views_differ() -> None:
    zoo = open_zoo(digits_zoo())
    make = lambda: ZooDataset(zoo, "all", augment="paper", views=2, seed=7, cache=False)  # noqa: E731
    first, second = make(), make()
    a, b = first[4]["weights"], second[4]["weights"]
    assert a.shape == (2, zoo.parameters) and torch.equal(a, b)
    assert not torch.equal(a[0], a[1])
    second.set_epoch(1)
    assert not torch.equal(second[4]["weights"], a)
    explicit = Compose([PermuteUnits(WeightStructure.of(zoo)), RandomErase()])
    expected = explicit(
        zoo.weights(first.samples["model_id"][4], first.samples["epoch"][4]), sample_rng(7, 0, 4, 0)
    )
    np.testing.assert_array_equal(a[0].numpy(), expected)
    serial = next(iter(DataLoader(first, batch_size=18)))["weights"]
    parallel = torch.cat([b["weights"] for b in DataLoader(first, batch_size=6, num_workers=2)])
    assert torch.equal(serial, parallel)  # same samples whatever the batching or worker count


def test_augmented_tokens_detokenize_to_an_equivalent_network() -> None:
    zoo = open_zoo(digits_zoo())
    data = ZooDataset(zoo, "all", representation="tokens", augment=PermuteUnits(WeightStructure.of(zoo)))
    sample = data[2]
    flat = data.detokenize(sample["tokens"])
    x = torch.randn(16, 1, 8, 8)
    reference = zoo.model(sample["model_id"], sample["epoch"])(x)
    torch.testing.assert_close(
        _outputs("cnn_tiny", (1, 8, 8), 10, flat.numpy(), x), reference, rtol=1e-5, atol=1e-5
    )
