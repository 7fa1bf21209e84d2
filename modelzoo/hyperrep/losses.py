"""The loss terms of the three papers, each a small named function, and how they combine.

Structural (reconstruction) losses compare token values at real (unpadded) slots only; contrastive
losses compare the projections of two augmented views; behavioural losses compare the outputs of
the original and the reconstructed networks on query inputs. The composite (2025, eq. 1; the 2021
EcD/Ec+D loss is its gamma = 1 - beta_2021, beta = 1 case):

    L = gamma * L_C + (1 - gamma) * (beta * L_S + (1 - beta) * L_B)

Registries (``RECONSTRUCTION``, ``CONTRAST``, ``BEHAVIOUR``) are what the config's
``loss.reconstruction`` / ``loss.contrast`` / ``loss.behaviour`` name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional

STD_FLOOR = 1e-4  # the 2022 paper's floor on a layer's std

RECONSTRUCTION: dict[str, Callable[..., torch.Tensor]] = {}
CONTRAST: dict[str, Callable[..., torch.Tensor]] = {}
BEHAVIOUR: dict[str, Callable[..., torch.Tensor]] = {}


def _register(table: dict[str, Callable[..., torch.Tensor]], name: str):
    def decorator(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        table[name] = fn
        return fn

    return decorator


# --------------------------------------------------------------------------- structural


@_register(RECONSTRUCTION, "mse")
def reconstruction_mse(
    output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, **_: torch.Tensor
) -> torch.Tensor:
    """2021 paper, Section 3 (ED): L_MSE, the mean squared error over every real weight (padding
    of the token grid excluded). ``mask`` broadcasts against ``output``."""
    mask = mask.expand_as(output)
    return (output[mask] - target[mask]).square().mean()


@_register(RECONSTRUCTION, "lwln")
def layerwise_mse(
    output: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    *,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> torch.Tensor:
    """2022 paper (seed 003), eq. 2: layer-wise loss normalisation. Output and target are both
    standardised with their layer's train-split ``mean`` and ``std`` (floored at 1e-4;
    per-slot tensors broadcasting against ``output``) before the MSE, so every layer weighs the
    same whatever the spread of its weights."""
    std = std.clamp_min(STD_FLOOR)
    return reconstruction_mse((output - mean) / std, (target - mean) / std, mask)


# --------------------------------------------------------------------------- contrastive


@_register(CONTRAST, "ntxent")
def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """2021 paper, eq. 2 (NT-Xent, Chen et al. 2020): views ``a[i]`` and ``b[i]`` are the
    positive pair; the other 2B-2 projections of the batch are the negatives. Cosine similarity
    over ``temperature``; the mean over all 2B anchors."""
    z = functional.normalize(torch.cat([a, b]), dim=1)
    similarity = z @ z.T / temperature
    similarity = similarity.masked_fill(
        torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf")
    )
    n = len(a)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return functional.cross_entropy(similarity, partner)


@_register(CONTRAST, "positive")
def positive_contrast(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """2021 paper, eq. 3 (L_c+, Ec+D): the contrast without negatives, -log(exp(sim/T)) =
    -sim(a_i, b_i)/T, averaged over the batch (the decoder's reconstruction term is what keeps
    the embeddings from collapsing)."""
    return -functional.cosine_similarity(a, b, dim=1).mean() / temperature


# --------------------------------------------------------------------------- behavioural


@_register(BEHAVIOUR, "mse")
def behaviour_mse(logits: torch.Tensor, reference: torch.Tensor, **_: float) -> torch.Tensor:
    """2025 paper (seed 004), eq. 2 as implemented there (Section 4.1): MSE between the softmax
    outputs of the reconstructed (``logits`` [M, n, K]) and the original networks on the
    queries."""
    return functional.mse_loss(logits.softmax(-1), reference.softmax(-1))


@_register(BEHAVIOUR, "ce")
def behaviour_cross_entropy(
    logits: torch.Tensor, reference: torch.Tensor, **_: float
) -> torch.Tensor:
    """2025 paper, Appendix D.2: cross-entropy of the reconstruction's prediction against the
    original's softmax output (soft labels), averaged over models and queries."""
    return -(reference.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean()


@_register(BEHAVIOUR, "kl")
def behaviour_distillation(
    logits: torch.Tensor, reference: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """2025 paper, Appendix D.2: the distillation loss (Hinton et al. 2015) with temperature 2:
    T^2 * KL(softmax(reference/T) || softmax(logits/T)), averaged over models and queries."""
    target = (reference / temperature).log_softmax(-1)
    own = (logits / temperature).log_softmax(-1)
    kl = (target.exp() * (target - own)).sum(-1).mean()
    return kl * temperature**2


def composite(
    gamma: float,
    beta: float,
    contrast: torch.Tensor,
    structural: torch.Tensor,
    behavioural: torch.Tensor,
) -> torch.Tensor:
    """2025 paper, eq. 1: gamma*L_C + (1-gamma)*(beta*L_S + (1-beta)*L_B)."""
    return gamma * contrast + (1.0 - gamma) * (beta * structural + (1.0 - beta) * behavioural)
