"""Optimisers of the zoos: the torch.optim reference, and its stacked twin for the vectorised engine.

Both follow torch.optim's update rules exactly (Adam with L2 ``weight_decay`` added to the gradient,
SGD with optional momentum), so a model trained by either engine ends up with the same weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def _adam(params: Iterable[torch.nn.Parameter], training: dict) -> torch.optim.Optimizer:
    return torch.optim.Adam(
        params, lr=training["lr"], betas=ADAM_BETAS, eps=ADAM_EPS,
        weight_decay=training["weight_decay"], foreach=False,
    )  # fmt: skip


def _sgd(params: Iterable[torch.nn.Parameter], training: dict) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=training["lr"], momentum=training["momentum"],
        weight_decay=training["weight_decay"], foreach=False,
    )  # fmt: skip


OPTIMIZERS: dict[str, Callable[[Iterable[torch.nn.Parameter], dict], torch.optim.Optimizer]] = {
    "adam": _adam,
    "sgd": _sgd,
}


def make_optimizer(params: Iterable[torch.nn.Parameter], training: dict) -> torch.optim.Optimizer:
    return OPTIMIZERS[training["optimizer"]](params, training)


def make_scheduler(
    optimizer: torch.optim.Optimizer, training: dict, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """``schedule: onecycle`` is torch's OneCycleLR with ``max_lr`` = the run's lr over all its
    steps and torch's defaults otherwise (warm-up 30%, cosine annealing, momentum cycled between
    0.85 and 0.95, initial lr max_lr / 25), as the Model Zoos ResNet-18 generators set it up."""
    schedule = training.get("schedule", "constant")
    if schedule == "constant":
        return None
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=training["lr"], epochs=training["epochs"],
            steps_per_epoch=steps_per_epoch,
        )  # fmt: skip
    raise ValueError(f"unknown schedule {schedule!r}; choose one of: constant, onecycle")


# --------------------------------------------------------------------------- stacked twins
#
# The vectorised engine keeps the parameters of M models as the rows of one [M, P] tensor, so an
# optimiser step is a handful of element-wise ops whatever the architecture. Each op mirrors the one
# torch.optim's single-tensor implementation applies per model, with the per-model scalars (lr,
# weight decay, momentum) as [M, 1] columns. ``torch.addcmul(a, b, column)`` rounds like torch's
# ``a.add(b, alpha=scalar)`` (both fused multiply-adds on CPU), and ``p + (s * m) / d`` like
# ``p.addcdiv_(m, d, value=s)``, so on one CPU a row follows torch.optim bit for bit. ``active``
# (when given) masks the update of models that have diverged: their rows stay frozen, NaN never
# leaves a row.


def _column(values: list[float], like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=like.device).unsqueeze(1)


class StackedAdam:
    """``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient) for the rows of ``params``."""

    def __init__(self, params: torch.Tensor, trainings: list[dict]) -> None:
        self.params = params
        self.lr64 = _column([t["lr"] for t in trainings], params, torch.float64)
        # one learning rate for the whole group (seed zoos): the step size is a Python scalar,
        # which the multiplication rounds to float32 exactly as ``.to(float32)`` rounds the column
        lrs = {t["lr"] for t in trainings}
        self.lr = float(lrs.pop()) if len(lrs) == 1 else None
        self.weight_decay = _column([t["weight_decay"] for t in trainings], params, params.dtype)
        self.any_decay = any(t["weight_decay"] != 0 for t in trainings)
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self.steps = 0

    def step(self, grad: torch.Tensor, active: torch.Tensor | None = None) -> None:
        beta1, beta2 = ADAM_BETAS
        self.steps += 1
        if self.any_decay:
            grad = torch.addcmul(grad, self.params, self.weight_decay)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**self.steps
        bias_correction2_sqrt = (1 - beta2**self.steps) ** 0.5
        denom = self.exp_avg_sq.sqrt().div_(bias_correction2_sqrt).add_(ADAM_EPS)
        if self.lr is not None:
            neg_step_size = self.lr / -bias_correction1
        else:
            neg_step_size = (self.lr64 / -bias_correction1).to(self.params.dtype)
        update = torch.mul(self.exp_avg, neg_step_size).div_(denom)
        if active is not None:
            update = torch.where(active.unsqueeze(1), update, 0.0)
        self.params.add_(update)


class StackedSGD:
    """``torch.optim.SGD`` (momentum, dampening 0, no Nesterov) for the rows of ``params``."""

    def __init__(self, params: torch.Tensor, trainings: list[dict]) -> None:
        self.params = params
        self.neg_lr = _column([-t["lr"] for t in trainings], params, params.dtype)
        self.weight_decay = _column([t["weight_decay"] for t in trainings], params, params.dtype)
        self.any_decay = any(t["weight_decay"] != 0 for t in trainings)
        self.momentum = _column([t["momentum"] for t in trainings], params, params.dtype)
        self.any_momentum = any(t["momentum"] != 0 for t in trainings)
        self.all_momentum = all(t["momentum"] != 0 for t in trainings)
        self.buffer: torch.Tensor | None = None

    def step(self, grad: torch.Tensor, active: torch.Tensor | None = None) -> None:
        if self.any_decay:
            grad = torch.addcmul(grad, self.params, self.weight_decay)
        if self.any_momentum:
            # torch starts the buffer as a copy of the first gradient; rows without momentum use
            # the gradient itself (not 0 * buffer + grad, which an infinite buffer would poison).
            if self.buffer is None:
                self.buffer = grad.clone()
            else:
                self.buffer.mul_(self.momentum).add_(grad)
                if not self.all_momentum:
                    self.buffer = torch.where(self.momentum != 0, self.buffer, grad)
            grad = self.buffer
        if active is None:
            self.params.addcmul_(grad, self.neg_lr)
        else:
            update = torch.addcmul(self.params, grad, self.neg_lr)
            self.params.copy_(torch.where(active.unsqueeze(1), update, self.params))


STACKED_OPTIMIZERS: dict[str, type[StackedAdam] | type[StackedSGD]] = {
    "adam": StackedAdam,
    "sgd": StackedSGD,
}


def make_stacked_optimizer(params: torch.Tensor, trainings: list[dict]) -> StackedAdam | StackedSGD:
    """The stacked optimiser of a group; every run of a group uses the same optimiser type."""
    kinds = {t["optimizer"] for t in trainings}
    if len(kinds) != 1:
        raise ValueError(f"a group mixes optimisers {sorted(kinds)}")
    return STACKED_OPTIMIZERS[kinds.pop()](params, trainings)
