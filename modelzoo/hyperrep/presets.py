"""Presets: one flag per row of the papers' tables, each with the settings its source states.

A preset is a partial config (see ``config.py``) laid over the defaults. Settings a paper leaves
open come from the authors' public code where it states them (marked "code" below) or are
modelzoo's defaults. The 2021 presets use the paper's TETRIS-SEED sizes (Section 4.2); the 2022
ones the MNIST column of its Table 8; the 2025 ones its Appendix B. On another zoo, override sizes
with ``--set`` (e.g. ``--set model.latent=64``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ModelZooError


@dataclass(frozen=True)
class Preset:
    name: str
    source: str
    settings: dict[str, dict[str, Any]]


PRESETS: dict[str, Preset] = {}


def _layered(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


def register_preset(name: str, source: str, *layers: dict[str, dict[str, Any]]) -> Preset:
    if name in PRESETS:
        raise ValueError(f"preset {name!r} registered twice")
    PRESETS[name] = Preset(name, source, _layered(*layers))
    return PRESETS[name]


def list_presets() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ModelZooError(
            f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}"
        ) from None


# --------------------------------------------------------------------------- 2021 (seed 001)
# Section 4.2: 2 attention blocks, 1 head, token dim 128, FC 512 on the tetris zoos; adam, lr 1e-4,
# weight decay 1e-9, dropout 0.1, batch 500; 70/15/15 splits; permutation + erasing (p 0.5,
# 0.03-0.3), noise omitted (Section 4.3); compression ratio 2 (L = 50 of 100 parameters, Table 12).
# Code: beta 0.5 (their gamma 0.5 on the contrast), temperature 0.1, projection head 3 layers of 50
# -> 20, 1000 epochs (100 tune iterations of 10 epochs).
PAPER_2021 = {
    "model": {
        "name": "attention",
        "encoding": "neuron",
        "compression": "token",
        "d_model": 128,
        "heads": 1,
        "blocks": 2,
        "ff_dim": 512,
        "latent": 50,
        "dropout": 0.1,
    },
    "projection": {"layers": 3, "hidden": 50, "out": 20},
    "loss": {
        "gamma": 0.5,
        "beta": 1.0,
        "contrast": "ntxent",
        "temperature": 0.1,
        "reconstruction": "mse",
    },
    "data": {"splits": [0.7, 0.15, 0.15], "normalize": True, "target": "view"},
    "augment": {
        "permute": True,
        "permutations": 120,
        "erase": 0.5,
        "erase_scale": [0.03, 0.3],
        "noise": 0.0,
    },
    "train": {"epochs": 1000, "batch_size": 500, "lr": 1e-4, "weight_decay": 1e-9},
}
T1 = "2021 paper (seed 001) Table 1"
T2 = "2021 paper (seed 001) Table 2, under EcD"
register_preset(
    "ed", f"{T1}: ED, reconstruction only (L_MSE)", PAPER_2021, {"loss": {"gamma": 0.0}}
)
register_preset(
    "ec",
    f"{T1}: Ec, contrast only (NT-Xent, eq. 2); no decoder is trained",
    PAPER_2021,
    {"loss": {"gamma": 1.0}},
)
register_preset("ecd", f"{T1}: EcD, beta*L_MSE + (1-beta)*L_c with beta 0.5 (code)", PAPER_2021)
register_preset(
    "ec+d",
    f"{T1}: Ec+D, positive-only contrast L_c+ (eq. 3)",
    PAPER_2021,
    {"loss": {"contrast": "positive"}},
)
register_preset(
    "ff",
    f"{T2}: FF, 10 FC-ReLU layers per side (Section 4.2)",
    PAPER_2021,
    {"model": {"name": "feedforward", "ff_layers": 10}},
)
register_preset(
    "attw",
    f"{T2}: AttW, one token per weight, whole output sequence compressed",
    PAPER_2021,
    {"model": {"encoding": "weight", "compression": "sequence"}},
)
register_preset(
    "attw+t",
    f"{T2}: AttW+t, one token per weight, compression token",
    PAPER_2021,
    {"model": {"encoding": "weight", "compression": "token"}},
)
register_preset(
    "attn",
    f"{T2}: AttN, one token per neuron, whole output sequence compressed",
    PAPER_2021,
    {"model": {"encoding": "neuron", "compression": "sequence"}},
)
register_preset(
    "attn+t",
    f"{T2}: AttN+t, one token per neuron, compression token (= ecd)",
    PAPER_2021,
    {"model": {"encoding": "neuron", "compression": "token"}},
)

# --------------------------------------------------------------------------- 2022 (seed 003)
# Appendix B, Table 8 (MNIST column): d_token 972, d_hidden 1140, 2 layers, 12 heads, d_z 700,
# linear compression of a CLS token, adam lr 1e-4, dropout 0.1, weight decay 1e-9, beta 0.977,
# 1750 epochs, batch 500; projection head 4 layers of 400 -> 50; epochs 21-25 of each model (§4.1).
PAPER_2022 = {
    "model": {
        "name": "attention",
        "encoding": "neuron",
        "compression": "token",
        "d_model": 972,
        "heads": 12,
        "blocks": 2,
        "ff_dim": 1140,
        "latent": 700,
        "dropout": 0.1,
    },
    "projection": {"layers": 4, "hidden": 400, "out": 50},
    "loss": {"gamma": 0.023, "beta": 1.0, "contrast": "ntxent", "temperature": 0.1},
    "data": {"epochs": [21, 22, 23, 24, 25], "splits": [0.7, 0.15, 0.15], "normalize": False},
    "augment": {"permute": True, "permutations": 120, "erase": 0.5, "noise": 0.0},
    "train": {"epochs": 1750, "batch_size": 500, "lr": 1e-4, "weight_decay": 1e-9},
}
register_preset(
    "lwln",
    "2022 paper (seed 003) eq. 2: layer-wise loss normalisation on raw "
    "weights, Table 8 (MNIST) sizes",
    PAPER_2022,
    {"loss": {"reconstruction": "lwln"}},
)
register_preset(
    "no-lwln",
    "2022 paper (seed 003) eq. 1: the baseline plain MSE on raw weights, Table 8 (MNIST) sizes",
    PAPER_2022,
    {"loss": {"reconstruction": "mse"}},
)

# --------------------------------------------------------------------------- 2025 (seed 004)
# Section 4.1 and Appendix B: SANE-style sequential AE, token size 289, latent 64 per token,
# d_model 256, 8 heads, 8 layers, batch 64, weight decay 3e-9, 100 epochs, lr 1e-4 for L_C+L_S and
# 1e-5 with L_B; gamma 0.05 with L_C, beta 0.1 with L_B; 256 queries of the zoo's training set per
# batch; permutation augmentation only; checkpoints of epochs 20, 30, 40, 50; 80/5/15 splits; no
# standardisation with L_B (the SANE baseline standardises).
PAPER_2025 = {
    "model": {
        "name": "sequential",
        "token_size": 289,
        "latent": 64,
        "d_model": 256,
        "heads": 8,
        "blocks": 8,
        "ff_dim": 1024,
        "dropout": 0.1,
        "window": 0,
    },
    "projection": {"layers": 2, "hidden": 30, "out": 30},
    "loss": {
        "contrast": "ntxent",
        "temperature": 0.1,
        "behaviour": "mse",
        "queries": "train",
        "query_count": 256,
        "reconstruction": "mse",
    },
    "data": {"epochs": [20, 30, 40, 50], "splits": [0.8, 0.05, 0.15], "target": "view"},
    "augment": {"permute": True, "permutations": None, "erase": 0.0, "noise": 0.0},
    "train": {"epochs": 100, "batch_size": 64, "weight_decay": 3e-9},
}
T3 = "2025 paper (seed 004) Table 1"
register_preset(
    "lc+ls",
    f"{T3}: L_C + L_S, the SANE baseline (gamma 0.05, beta 1, lr 1e-4)",
    PAPER_2025,
    {"loss": {"gamma": 0.05, "beta": 1.0}, "data": {"normalize": True}, "train": {"lr": 1e-4}},
)
register_preset(
    "ls+lb",
    f"{T3}: L_S + L_B (gamma 0, beta 0.1, lr 1e-5)",
    PAPER_2025,
    {"loss": {"gamma": 0.0, "beta": 0.1}, "data": {"normalize": False}, "train": {"lr": 1e-5}},
)
register_preset(
    "lc+ls+lb",
    f"{T3}: L_C + L_S + L_B (gamma 0.05, beta 0.1, lr 1e-5)",
    PAPER_2025,
    {"loss": {"gamma": 0.05, "beta": 0.1}, "data": {"normalize": False}, "train": {"lr": 1e-5}},
)
