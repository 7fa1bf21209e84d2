"""How far two correct float32 trainings of one run may drift apart: the engine tests' tolerance.

The vectorised engine and the reference trainer compute the same float32 math in different
summation orders, so every optimiser step leaves them a few rounding errors apart, and training
then amplifies or damps those differences: slowly for a well-conditioned run, by orders of
magnitude for a chaotic one (Adam on saturated units divides near-zero gradients by their own
size). A fixed tolerance is therefore either too loose for short runs or too tight for long ones.

:func:`drift_bound` measures the amplification of the run itself instead. It trains the run with
the reference trainer three more times, each with a rounding-sized change that is not a bug: the
training images one ulp up (an error in every step's gradients, as a summation order is), the
initial weights one ulp up, and, for convolutional nets, torch's native convolution kernels
instead of oneDNN's (the same math summed in another order). Their largest distance from the
plain reference at each epoch is the run's *chaos*; the bound is ``CHAOS_FACTOR`` times that (at
least one ulp of the largest weight). docs/engine.md ("Tolerance and what the tests check") has
the derivation and the measurements behind the factor; ``benchmarks/engine_tolerance.py``
reproduces them.

What it does not cover: a max-pool window whose two largest inputs come closer than the engines'
rounding difference sends that step's gradient to another input (a discrete jump, ~1e-5 in the
layers below the pool). The chance grows with the number of pool windows trained (CNN-medium on
3x32x32 inputs: twice in 16 runs of 6 epochs), so long runs of such nets are compared by metrics.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch
from torch.backends import mkldnn

from ..architectures import get_architecture
from ..data import TrainingData
from ..spec import Run
from .reference import train_reference
from .result import RunResult

CHAOS_FACTOR = 8  # engine drift <= 1.2x the chaos in every swept run without a pool tie flip
PERTURBATIONS = ("images+1ulp", "init+1ulp", "native-conv")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch with one intra-op thread (the engine's setting: the same bits on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def weight_drift(result: RunResult, expected: RunResult) -> np.ndarray:
    """The largest weight difference at each stored epoch (0 where both are NaN)."""
    difference = np.abs(result.weights.astype(np.float64) - expected.weights)
    return np.nan_to_num(difference, nan=0.0).max(axis=1, initial=0.0)


def one_ulp_up(values: torch.Tensor | np.ndarray):
    """Every value moved to the next float32 towards +inf."""
    if isinstance(values, np.ndarray):
        return np.nextafter(values, np.float32(np.inf)).astype(np.float32)
    return torch.nextafter(values, torch.tensor(float("inf"), dtype=values.dtype))


def perturbed_references(
    run: Run, data: TrainingData, reference: RunResult | None = None
) -> dict[str, RunResult]:
    """The reference trainer's result for ``run`` under each perturbation (CPU, one thread)."""
    with one_thread():
        reference = reference or train_reference(run, data)
        up = replace(data.train, images=one_ulp_up(data.train.images))
        results = {
            "images+1ulp": train_reference(run, TrainingData(up, data.validation, data.test)),
            "init+1ulp": train_reference(run, data, initial=one_ulp_up(reference.weights[0])),
        }
        if get_architecture(run.architecture["name"]).has_conv and mkldnn.is_available():
            with warnings.catch_warnings():  # torch warns about Intel-GPU TF32 when toggling
                warnings.simplefilter("ignore", UserWarning)
                with mkldnn.flags(enabled=False):
                    results["native-conv"] = train_reference(run, data)
    return results


def chaos(run: Run, data: TrainingData, reference: RunResult) -> np.ndarray:
    """Per stored epoch: how far rounding-sized changes move the reference (the largest)."""
    drifts = [
        weight_drift(r, reference) for r in perturbed_references(run, data, reference).values()
    ]
    return np.max(drifts, axis=0)


def drift_bound(run: Run, data: TrainingData, reference: RunResult) -> np.ndarray:
    """Per stored epoch: the largest weight difference a correct engine may have from
    ``reference`` (the reference trainer's result for ``run`` on ``data``)."""
    largest = np.nan_to_num(np.abs(reference.weights), nan=0.0).max(axis=1, initial=0.0)
    ulp = np.spacing(largest.astype(np.float32)).astype(np.float64)
    return CHAOS_FACTOR * np.maximum(chaos(run, data, reference), ulp)
