"""Variational dropout for sparsification (Molchanov, Ashukha, Vetrov 2017, "Variational Dropout
Sparsifies Deep Neural Networks"), attached to an existing network without changing its modules.

Every weight tensor of a ``Linear`` or ``Conv2d`` layer gets a parameter ``log sigma^2`` of its
shape; ``log alpha = log sigma^2 - log theta^2`` (clamped to [-10, 10] as the Model Zoos
repository does). In training the layer's output is drawn with the local reparameterisation trick:
``b ~ N(x theta + bias, x^2 (alpha theta^2))`` (a convolution of ``x^2`` with ``alpha theta^2`` for
Conv2d), so one Gaussian draw per output unit replaces one per weight. In evaluation a weight whose
``log alpha > 3`` is pruned (set to zero); the stored twin states are these effective weights.
Biases stay deterministic (the paper sparsifies weights only).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

K1, K2, K3 = 0.63576, 1.87320, 1.48695  # the paper's approximation of -KL(q || log-uniform prior)
THRESHOLD = 3.0  # prune where log alpha > 3
LOG_SIGMA2_INIT = -10.0  # as the repository's CNN_ARD layers start
CLAMP = 10.0  # log alpha is clamped to [-10, 10] (repository)
EPS = 1e-15


def log_alpha(weight: torch.Tensor, log_sigma2: torch.Tensor) -> torch.Tensor:
    """``log sigma^2 - log theta^2``, clamped to [-10, 10]."""
    return torch.clamp(log_sigma2 - 2.0 * torch.log(torch.abs(weight) + EPS), -CLAMP, CLAMP)


def kl_approximation(log_alphas: torch.Tensor) -> torch.Tensor:
    """The paper's eq. 14: ``KL ~= -sum(k1 sigmoid(k2 + k3 log a) - 0.5 log1p(1/a) - k1)``."""
    negative_kl = (K1 * torch.sigmoid(K2 + K3 * log_alphas)
                   - 0.5 * functional.softplus(-log_alphas) - K1)  # fmt: skip
    return -negative_kl.sum()


def pruned(weight: torch.Tensor, log_sigma2: torch.Tensor) -> torch.Tensor:
    """The effective evaluation weight: zero where ``log alpha > 3``."""
    return torch.where(log_alpha(weight, log_sigma2) > THRESHOLD, torch.zeros_like(weight), weight)


def reparameterised_moments(module: nn.Module, x: torch.Tensor,
                            log_sigma2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Mean and variance of the layer's pre-activation under q(W) (local reparameterisation)."""
    variance_weights = torch.exp(log_alpha(module.weight, log_sigma2)) * module.weight**2
    if isinstance(module, nn.Linear):
        mean = functional.linear(x, module.weight, module.bias)
        var = functional.linear(x * x, variance_weights)
    else:
        conv = dict(stride=module.stride, padding=module.padding, dilation=module.dilation,
                    groups=module.groups)  # fmt: skip
        mean = functional.conv2d(x, module.weight, module.bias, **conv)
        var = functional.conv2d(x * x, variance_weights, None, **conv)
    return mean, var


class VariationalDropout(nn.Module):
    """Wraps ``net``: its Linear/Conv2d layers compute with variational dropout (forward hooks
    replace their outputs), ``log_sigma2`` holds one parameter per wrapped weight. Noise comes
    from ``generator`` (an explicit seed, so a twin is reproducible)."""

    def __init__(self, net: nn.Module, generator: torch.Generator) -> None:
        super().__init__()
        self.net, self.generator = net, generator
        self.layers = {name: m for name, m in net.named_modules()
                       if isinstance(m, (nn.Linear, nn.Conv2d))}  # fmt: skip
        if any(
            isinstance(m, nn.Conv2d) and m.padding_mode != "zeros" for m in self.layers.values()
        ):
            raise ValueError("variational dropout: only zero-padded convolutions are supported")
        self.log_sigma2 = nn.ParameterDict({
            _key(name): nn.Parameter(torch.full_like(m.weight, LOG_SIGMA2_INIT))
            for name, m in self.layers.items()})  # fmt: skip
        for name, module in self.layers.items():
            module.register_forward_hook(self._hook(_key(name)))

    def _hook(self, key: str):
        def hook(module: nn.Module, args: tuple, _output: torch.Tensor) -> torch.Tensor:
            x, log_sigma2 = args[0], self.log_sigma2[key]
            if not self.training:
                weight = pruned(module.weight, log_sigma2)
                if isinstance(module, nn.Linear):
                    return functional.linear(x, weight, module.bias)
                return module._conv_forward(x, weight, module.bias)
            mean, var = reparameterised_moments(module, x, log_sigma2)
            noise = torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype)
            noise = noise.to(mean.device)  # drawn on the CPU generator: the same on any device
            return mean + torch.sqrt(var + EPS) * noise

        return hook

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def kl(self) -> torch.Tensor:
        """The KL term summed over every wrapped weight."""
        return sum(kl_approximation(log_alpha(m.weight, self.log_sigma2[_key(n)]))
                   for n, m in self.layers.items())  # fmt: skip

    @torch.no_grad()
    def pruned_state(self) -> dict[str, torch.Tensor]:
        """The wrapped network's state dict with every wrapped weight pruned (what is stored);
        the training weights themselves stay unpruned, as in the paper."""
        state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        for name, module in self.layers.items():
            state[f"{name}.weight" if name else "weight"] = pruned(
                module.weight, self.log_sigma2[_key(name)]
            )
        return state

    def weight_count(self) -> int:
        return sum(m.weight.numel() for m in self.layers.values())


def sparsity(net: nn.Module) -> float:
    """Fraction of the Linear/Conv2d weights of ``net`` that are exactly zero."""
    weights = [m.weight for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / max(1, sum(w.numel() for w in weights))


def kl_weight(epoch: int, epochs: int) -> float:
    """The KL weight of training epoch ``epoch`` (1-based) of ``epochs``, as the repository's
    ``get_kl_weight``: ``min(1, 0.01 * (epoch - 1) / epochs)`` (its first epoch has index 0)."""
    return min(1.0, 1e-2 * (epoch - 1) / epochs)


def _key(name: str) -> str:
    return name.replace(".", "__")
