"""hyperrep building blocks against independent references: tokens vs WeightStructure, batch
augmentations vs modelzoo.augment and the networks' own function, the functional forward vs
``zoo.model``, and every registered autoencoder's shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_zoo_helpers import digits_zoo, seed_zoo

from modelzoo import open_zoo
from modelzoo.augment import RandomErase
from modelzoo.errors import ModelZooError
from modelzoo.hyperrep.augment import BatchAugmenter
from modelzoo.hyperrep.autoencoders import build_autoencoder, list_autoencoders
from modelzoo.hyperrep.behaviour import model_activations, network_outputs
from modelzoo.hyperrep.config import build_config
from modelzoo.hyperrep.models import ProjectionHead
from modelzoo.hyperrep.tokens import chunked_tokens, flat_tokens, neuron_tokens, weight_tokens
from modelzoo.tokens import WeightStructure

AUGMENT = {"permute": True, "permutations": None, "erase": 0.5, "erase_scale": [0.03, 0.3],
           "noise": 0.0}  # fmt: skip


@pytest.fixture(scope="module", params=["tetris", "digits"])
def zoo(request):
    return open_zoo(seed_zoo() if request.param == "tetris" else digits_zoo())


def test_token_plans_invert_exactly(zoo):
    structure = WeightStructure.of(zoo)
    flat = torch.from_numpy(zoo.weights(epochs=zoo.epochs[-1]))
    for plan in (neuron_tokens(structure), weight_tokens(structure), flat_tokens(structure),
                 chunked_tokens(structure, 7)):  # fmt: skip
        tokens = plan.tokenize(flat)
        assert tokens.shape == (len(flat), *plan.shape)
        assert torch.equal(plan.detokenize(tokens), flat)
        assert int(plan.mask.sum()) == zoo.parameters  # every weight exactly once
        assert float(tokens[:, ~torch.from_numpy(plan.mask)].abs().sum()) == 0.0
    expected = structure.tokenize(flat.numpy())  # the Zoo API's own neuron tokens
    assert np.array_equal(neuron_tokens(structure).tokenize(flat).numpy(), expected)
    chunks = chunked_tokens(structure, 7)
    assert chunks.shape[1] == 7 and chunks.layer.max() == len(structure.layers) - 1


def _logits(zoo, flat: np.ndarray, model_id: int, x: torch.Tensor) -> torch.Tensor:
    """An independent reference: the zoo's nn.Module with ``flat`` loaded."""
    from modelzoo.nets import load_flat_parameters

    net = zoo.model(model_id, zoo.epochs[-1])
    load_flat_parameters(net, torch.from_numpy(np.ascontiguousarray(flat)))
    with torch.no_grad():
        return net(x)


def test_functional_forward_equals_zoo_model(zoo):
    ids = zoo.model_ids[:4]
    flat = torch.from_numpy(zoo.weights(ids, zoo.epochs[-1]))
    x = zoo.data("test").images[:16]
    groups = network_outputs(zoo.plan, model_activations(zoo, ids), flat, x)
    for rows, logits in groups:
        for k, row in enumerate(rows):
            with torch.no_grad():
                expected = zoo.model(int(ids[row]), zoo.epochs[-1])(x)
            assert torch.allclose(logits[k], expected, atol=1e-5)


def test_permutation_views_compute_the_same_function(zoo):
    structure = WeightStructure.of(zoo)
    augment = BatchAugmenter(structure, {**AUGMENT, "erase": 0.0}, seed=3)
    ids = zoo.model_ids[:3]
    flat = torch.from_numpy(zoo.weights(ids, zoo.epochs[-1]))
    permuted, before = augment(flat, torch.arange(3), epoch=1, view=0)
    assert torch.equal(permuted, before) and not torch.equal(permuted, flat)
    x = zoo.data("test").images[:8]
    for k, model_id in enumerate(ids):
        reference = _logits(zoo, flat[k].numpy(), int(model_id), x)
        assert torch.allclose(_logits(zoo, permuted[k].numpy(), int(model_id), x), reference, atol=1e-5)


def test_augmentations_are_per_sample_and_reproducible():
    zoo = open_zoo(seed_zoo())
    structure = WeightStructure.of(zoo)
    augment = BatchAugmenter(structure, AUGMENT, seed=7)
    flat = torch.from_numpy(zoo.weights(epochs=3))
    samples = torch.arange(len(flat))
    whole, _ = augment(flat, samples, epoch=2, view=1)
    part, _ = augment(flat[[5, 2]], samples[[5, 2]], epoch=2, view=1)
    assert torch.equal(part, whole[[5, 2]])  # independent of the batch a sample lands in
    assert not torch.equal(augment(flat, samples, 3, 1)[0], whole)  # epochs differ
    assert not torch.equal(augment(flat, samples, 2, 0)[0], whole)  # views differ
    pooled = BatchAugmenter(structure, {**AUGMENT, "permutations": 4, "erase": 0.0}, seed=7)
    distinct = {tuple(row.tolist()) for row in pooled(flat[:1].expand(64, -1), torch.arange(64), 1, 0)[0]}
    assert len(distinct) <= 4  # draws come from the fixed pool


class _Draws:
    """A stand-in generator that hands RandomErase the draws BatchAugmenter made."""

    def __init__(self, u: np.ndarray, low: float, high: float) -> None:
        self.u, self.low, self.high, self.calls = u, low, high, 0

    def random(self, n):
        self.calls += 1
        return self.u[:, 0] if self.calls == 1 else self.u[:, 2]

    def uniform(self, low, high, n):
        return low + (high - low) * self.u[:, 1]


def test_erasing_matches_modelzoo_augment_given_the_same_draws():
    from modelzoo.seeding import hashed_uniform

    zoo = open_zoo(seed_zoo())
    structure = WeightStructure.of(zoo)
    augment = BatchAugmenter(structure, {**AUGMENT, "permute": False}, seed=11)
    flat = torch.from_numpy(zoo.weights(epochs=2))
    samples = torch.arange(len(flat))
    erased, _ = augment(flat, samples, epoch=4, view=0)
    from modelzoo.hyperrep.augment import ERASE, sample_keys

    u = hashed_uniform(sample_keys(11, samples, 0, "ae-augment"), 4, ERASE, (3,)).double().numpy()
    reference = RandomErase(p=0.5, scale=(0.03, 0.3))(flat.numpy(), _Draws(u, 0.03, 0.3))
    assert np.array_equal(erased.numpy(), reference)
    assert (erased == 0).any()


@pytest.mark.parametrize("name", ["attention", "feedforward", "sequential"])
def test_every_autoencoder_round_trips_shapes(zoo, name):
    model_cfg = build_config(overrides=[f"model.name={name}", "model.d_model=16", "model.heads=2",
                                        "model.ff_dim=32", "model.latent=6", "model.token_size=9",
                                        "model.ff_layers=3", "model.window=4"])["model"]  # fmt: skip
    structure = WeightStructure.of(zoo)
    model = build_autoencoder(model_cfg, structure)
    plan = type(model).token_plan(structure, model_cfg)
    tokens = plan.tokenize(torch.from_numpy(zoo.weights(epochs=zoo.epochs[-1])))
    model.eval()
    z = model.encode(tokens)
    assert model.embed(z).shape == (len(tokens), 6)
    assert model.decode(z).shape == tokens.shape
    head = ProjectionHead(6, 3, 10, 4)
    assert head(model.embed(z)).shape == (len(tokens), 4)
    assert list_autoencoders() == ["attention", "feedforward", "sequential"]


def test_attention_variants_and_weight_tokens():
    zoo = open_zoo(seed_zoo())
    structure = WeightStructure.of(zoo)
    tokens = None
    for encoding in ("neuron", "weight"):
        for compression in ("token", "sequence"):
            cfg = build_config(overrides=[f"model.encoding={encoding}", f"model.compression={compression}",
                                          "model.d_model=8", "model.ff_dim=8", "model.latent=5"])["model"]  # fmt: skip
            model = build_autoencoder(cfg, structure).eval()
            plan = type(model).token_plan(structure, cfg)
            tokens = plan.tokenize(torch.from_numpy(zoo.weights(epochs=1)))
            z = model.encode(tokens)
            assert z.shape == (len(tokens), 5) and float(z.detach().abs().max()) < 1  # tanh bounds z
            assert model.decode(z).shape == tokens.shape
    assert tokens is not None and tokens.shape[1] == zoo.parameters  # AttW: a token per weight


def test_unknown_autoencoder_lists_the_registry():
    zoo = open_zoo(seed_zoo())
    with pytest.raises(ModelZooError, match="choose one of: attention, feedforward, sequential"):
        build_autoencoder({"name": "vae"}, WeightStructure.of(zoo))
