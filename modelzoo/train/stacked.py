"""A stacked network: M copies of one layer-table architecture run as one, forward and backward.

The parameters of the M models are the rows of one ``[M, P]`` tensor in the reference flattening
order (``ArchitecturePlan.layout``), so a row is exactly the stored weight vector. Activations travel
in one of two layouts:

* images as ``[B, M*C, H, W]`` in channels-last memory: each model's channels are contiguous, so a
  convolution is one grouped convolution (``groups=M``) that oneDNN/cuDNN vectorise across models,
  and max-pooling uses torch's fast channels-last kernel (the NCHW one is ~17x slower on CPU);
* vectors as ``[M, B, F]``: a linear layer is one batched matrix product.

The backward pass is written out with torch's own backward kernels (``convolution_backward``,
``max_pool2d_with_indices_backward``, ``tanh_backward``, the ``log_softmax``/``nll_loss``
backward), the ones autograd would run for the reference's module, so gradients agree with the
reference up to summation order. At these sizes (100 to 11k parameters) it is as fast as autograd
for CNNs and 10% faster for the MLP, needs no graph, and keeps a step one plain loop over the
layer table. Nothing is reduced across models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional

from ..architectures import (
    Act,
    ArchitecturePlan,
    Conv,
    Drop,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool,
    PlannedLayer,
)
from ..evaluation import log_softmax
from ..nets import ACTIVATIONS
from ..seeding import hashed_uniform

aten = torch.ops.aten
CHANNELS_LAST = torch.channels_last


def _activation_backward(
    name: str, grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """The kernels autograd uses for ``y = act(x)`` (derivatives.yaml), so gradients agree."""
    if name == "tanh":
        return aten.tanh_backward(grad, y)
    if name == "sigmoid":
        return aten.sigmoid_backward(grad, y)
    if name == "relu":
        return aten.threshold_backward(grad, y, 0)
    if name == "gelu":
        return aten.gelu_backward(grad, x)
    if name == "leaky_relu":
        return aten.leaky_relu_backward(grad, x, 0.01, False)
    if name == "silu":
        return aten.silu_backward(grad, x)
    raise ValueError(f"no backward for activation {name!r}")


# --------------------------------------------------------------------------- the stacked network
#
# In evaluation every model sees the same examples: the input stays "shared" ([n, C, H, W] or
# [n, F], no model axis) through the parameter-free layers until the first Conv/Linear, which
# computes all models' outputs in one dense call (M*O output channels or columns).


@dataclass
class Dropout:
    """Per-step dropout state: model keys, rates and the shared step counter."""

    keys: torch.Tensor  # int64 [M]
    rates: torch.Tensor  # float32 [M]
    scale: torch.Tensor  # float32 [M]: 1 - rate, rounded as the reference's Python scalar
    step: int = 0


class StackedNet:
    """M copies of an architecture plan whose parameters are the rows of one [M, P] tensor."""

    def __init__(self, plan: ArchitecturePlan, activation: str, models: int) -> None:
        self.plan, self.models, self.activation = plan, models, activation
        self.classes, self.parameters = plan.num_classes, plan.parameters
        self.act = ACTIVATIONS[activation]
        self.steps = plan.layers
        self.widest = max(max(math.prod(s.shape_in), math.prod(s.shape_out)) for s in self.steps)
        self.widest_image = max((math.prod(s.shape_out) for s in self.steps
                                 if len(s.shape_out) == 3), default=0)  # fmt: skip
        # the backward pass stops at the first layer with parameters (no gradient for the data)
        self.first_trained = min(i for i, s in enumerate(self.steps) if s.trained)
        self._views: dict[int, tuple[torch.Tensor, list]] = {}

    def layer_views(self, rows: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Each layer's (weight, bias) as views of ``rows`` [M, P] (parameters or gradients):
        Linear weights [M, O, F], Conv weights [M, O, C, k, k], biases [M, O]; (None, None) for
        layers without parameters.

        The views are made once per tensor and reused: the optimisers update the parameter rows
        in place and the backward pass writes into the same gradient rows, so the views stay
        valid, and a training step of a small network does not spend its time re-slicing."""
        cached = self._views.get(id(rows))
        if cached is not None and cached[0] is rows:
            return cached[1]
        m, views = self.models, []
        for step in self.steps:
            weight = bias = None
            if step.weight is not None:
                weight = rows[:, step.weight.span].view(m, *step.weight.shape)
            if step.bias is not None:
                bias = rows[:, step.bias.span]
            views.append((weight, bias))
        if len(self._views) >= 4:  # training uses two tensors (parameters, gradients): keep few
            self._views.clear()
        self._views[id(rows)] = (rows, views)  # holding ``rows`` keeps its id from being reused
        return views

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        params: torch.Tensor,
        x: torch.Tensor,
        shared: bool,
        dropout: Dropout | None = None,
        tape: list | None = None,
    ) -> torch.Tensor:
        """Logits [M, n, K] of all models.

        ``x`` is either per model ``[M, n, C, H, W]`` (training) or ``shared`` ``[n, C, H, W]``
        (evaluation). With a ``tape`` list, each layer appends what its backward needs.
        """
        m = self.models
        if not shared and not isinstance(self.steps[0].layer, Flatten | GlobalAvgPool):
            x = _to_image_layout(x)
        for step, (weight, bias) in zip(self.steps, self.layer_views(params)):
            layer, saved = step.layer, None
            if isinstance(layer, Conv):
                o = layer.out_channels
                weight = _conv_weight(weight)
                bias = bias.reshape(m * o) if bias is not None else None
                x = _channels_last(x)
                saved = (x, weight)
                x = functional.conv2d(x, weight, bias, layer.stride, groups=1 if shared else m)
                shared = False
            elif isinstance(layer, MaxPool):
                k = layer.kernel_size
                if tape is None:
                    x = _max_pool(x, k)
                else:
                    out, index = functional.max_pool2d(x, k, return_indices=True)
                    saved, x = (x, index), out
            elif isinstance(layer, Act):
                y = self.act(x)
                saved, x = (x, y), y
            elif isinstance(layer, Drop):
                if dropout is not None:
                    mask = self._dropout_mask(step, dropout, x)
                    scale = self._per_model(dropout.scale, x)
                    saved, x = (mask, scale), x * mask / scale
            elif isinstance(layer, GlobalAvgPool):
                x = x.mean(dim=(-2, -1))  # shared [n, C], per-model input [M, B, C], or [B, M*C]
                if not shared and x.dim() == 2:
                    x = x.view(x.shape[0], m, -1).transpose(0, 1)  # [M, B, C]
            elif isinstance(layer, Flatten):
                if shared or x.dim() == 5:  # shared images, or the per-model training input
                    x = x.flatten(-3)
                else:
                    b, _, h, w = x.shape
                    c = step.shape_in[0]
                    x = x.unflatten(1, (m, c)).permute(1, 0, 2, 3, 4).reshape(m, b, c * h * w)
            elif isinstance(layer, Linear):
                o, f = step.shape_out[0], step.shape_in[0]
                saved = (x, weight)
                if shared:  # one dense product for all models: [n, F] @ [F, M*O]
                    out = x @ weight.reshape(m * o, f).T
                    if bias is not None:
                        out += bias.reshape(m * o)
                    x = out.view(-1, m, o).transpose(0, 1)
                elif bias is not None:
                    x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
                else:
                    x = torch.bmm(x, weight.transpose(1, 2))
                shared = False
            if tape is not None:
                tape.append(saved)
        return x

    def _dropout_mask(self, step: PlannedLayer, dropout: Dropout, x: torch.Tensor) -> torch.Tensor:
        """Each model's keep-mask exactly as SeededDropout draws it, moved into x's layout."""
        m = self.models
        if x.dim() == 3:  # [M, B, F]
            uniform = hashed_uniform(
                dropout.keys, dropout.step, step.drop_index, tuple(x.shape[1:])
            )
            return (uniform >= dropout.rates.view(m, 1, 1)).to(x.dtype)
        b, _, h, w = x.shape
        c = step.shape_in[0]
        uniform = hashed_uniform(dropout.keys, dropout.step, step.drop_index, (b, c, h, w))
        keep = (uniform >= dropout.rates.view(m, 1, 1, 1, 1)).to(x.dtype)  # [M, B, C, H, W]
        return keep.permute(1, 3, 4, 0, 2).reshape(b, h, w, m * c).permute(0, 3, 1, 2)

    def _per_model(self, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A per-model value broadcast against an activation in either layout."""
        if x.dim() == 3:
            return values.view(self.models, 1, 1)
        c = x.shape[1] // self.models
        return values.repeat_interleave(c).view(1, -1, 1, 1)

    # ------------------------------------------------------------------ backward
    def backward(
        self, params: torch.Tensor, tape: list, grad: torch.Tensor, grads: torch.Tensor
    ) -> None:
        """Write d(sum of the models' losses)/d(params) into ``grads`` [M, P], given d/d(logits)."""
        m, views = self.models, self.layer_views(grads)
        for index in range(len(self.steps) - 1, -1, -1):
            step, saved, (grad_weight, grad_bias) = self.steps[index], tape[index], views[index]
            layer, need_input = step.layer, index > self.first_trained
            if isinstance(layer, Conv):
                x, weight = saved
                o, stride = layer.out_channels, layer.stride
                grad_x, grad_w, grad_b = aten.convolution_backward(
                    _channels_last(grad), x, weight,
                    [m * o] if step.bias else None, [stride, stride], [0, 0], [1, 1], False,
                    [0, 0], m,
                    [need_input, True, step.bias is not None],
                )  # fmt: skip
                grad_weight.copy_(grad_w.unflatten(0, (m, o)))
                if grad_bias is not None:
                    grad_bias.copy_(grad_b.view(m, o))
                grad = grad_x
            elif isinstance(layer, MaxPool):
                x, pool_index = saved
                k = layer.kernel_size
                grad = aten.max_pool2d_with_indices_backward(
                    grad, x, [k, k], [k, k], [0, 0], [1, 1], False, pool_index
                )
            elif isinstance(layer, Act):
                x, y = saved
                grad = _activation_backward(self.activation, grad, x, y)
            elif isinstance(layer, Drop):
                if saved is not None:
                    mask, scale = saved
                    grad = grad / scale * mask  # autograd's order for x * mask / scale
            elif isinstance(layer, GlobalAvgPool):
                if need_input:  # autograd's mean backward: the gradient spread, divided by H*W
                    c, h, w = step.shape_in
                    grad = grad.transpose(0, 1).reshape(grad.shape[1], m * c, 1, 1)
                    grad = grad.expand(-1, -1, h, w) / (h * w)
            elif isinstance(layer, Flatten):
                if need_input:
                    c, h, w = step.shape_in
                    b = grad.shape[1]
                    grad = grad.view(m, b, c, h, w).permute(1, 3, 4, 0, 2)
                    grad = grad.reshape(b, h, w, m * c).permute(0, 3, 1, 2)
            elif isinstance(layer, Linear):
                x, weight = saved
                grad_weight.copy_(torch.bmm(grad.transpose(1, 2), x))
                if grad_bias is not None:
                    grad_bias.copy_(grad.sum(1))
                if need_input:
                    grad = torch.bmm(grad, weight)
            if not need_input:
                break


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` with channels-last strides, even with one channel (where torch keeps NCHW strides and
    oneDNN then answers in NCHW, whose max-pool kernel is ~15x slower on CPU)."""
    if x.stride(1) == 1 and x.is_contiguous(memory_format=CHANNELS_LAST):
        return x
    _, c, h, w = x.shape
    strides = (h * w * c, 1, w * c, c)
    return torch.empty_strided(x.shape, strides, dtype=x.dtype, device=x.device).copy_(x)


def _conv_weight(rows: torch.Tensor) -> torch.Tensor:
    """The grouped-convolution weight [M*O, C, k, k] (channels-last) from rows [M, O, C, k, k]."""
    m, o, c, k, _ = rows.shape
    weight = torch.empty((m, o, k, k, c), dtype=rows.dtype, device=rows.device)
    weight.copy_(rows.permute(0, 1, 3, 4, 2))
    return weight.view(m * o, k, k, c).permute(0, 3, 1, 2)


def _max_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """Max-pooling without indices, as element-wise maxima of strided views (channels-last
    friendly, several times faster than torch's CPU kernel, which also computes indices)."""
    if k != 2:
        return functional.max_pool2d(x, k)
    h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    top = torch.maximum(x[:, :, 0:h:2, 0:w:2], x[:, :, 0:h:2, 1:w:2])
    return torch.maximum(top, torch.maximum(x[:, :, 1:h:2, 0:w:2], x[:, :, 1:h:2, 1:w:2]))


def _to_image_layout(x: torch.Tensor) -> torch.Tensor:
    """[M, B, C, H, W] -> [B, M*C, H, W] in channels-last memory (one copy)."""
    m, b, c, h, w = x.shape
    return x.permute(1, 3, 4, 0, 2).reshape(b, h, w, m * c).permute(0, 3, 1, 2)


def cross_entropy_step(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model mean cross-entropy [M] and its gradient w.r.t. logits [M, B, K].

    The gradient follows autograd's path for ``functional.cross_entropy`` (nll_loss_backward puts
    -1/B at the target, then log_softmax's backward), with the log-softmax written out (see
    :func:`modelzoo.evaluation.log_softmax`): equal to the reference to float32 rounding.
    """
    log_probs = log_softmax(logits)
    target = labels.unsqueeze(2)
    loss = -log_probs.gather(2, target).mean(dim=(1, 2))
    # nll_loss_backward seeds -1/B at the target and 0 elsewhere; log_softmax's backward is then
    # seed - exp(log_probs) * sum(seed), and sum(seed) is exactly -1/B. Negation is exact, so
    # that is exp(log_probs) * (1/B) everywhere, minus 1/B at the target: the same bits in three
    # ops instead of six (both constants are float32(1/B), as the kernels round them).
    inverse = 1.0 / labels.shape[1]
    grad = log_probs.exp().mul_(inverse)
    return loss, grad.scatter_(2, target, -inverse, reduce="add")
