"""Whole-tensor preprocessing: scale, grey/RGB conversion, resize, split and normalisation.

Everything works on the full ``[N, C, H, W]`` tensor in bounded chunks instead of per-image PIL
transforms: converting 60,000 MNIST images one by one through PIL takes far longer than loading
them, and chunking keeps peak memory at the output plus one chunk.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# ITU-R 601-2 luma weights, as torchvision's tensor ``rgb_to_grayscale`` uses them.
LUMA_WEIGHTS = (0.2989, 0.587, 0.114)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_CHUNK_ELEMENTS = 1 << 23  # ~32 MiB of float32 per chunk, input and output together


def output_channels(channels: int, grayscale: bool, rgb: bool) -> int:
    """Channels after conversion: grey first (3 -> 1), then RGB (1 -> 3), so both gives grey RGB."""
    if grayscale and channels == 3:
        channels = 1
    if rgb and channels == 1:
        channels = 3
    return channels


def preprocess(
    images: torch.Tensor,
    *,
    grayscale: bool = False,
    rgb: bool = False,
    size: int | None = None,
    crop: int | None = None,
) -> torch.Tensor:
    """Turn uint8 (0..255) or float ([0, 1]) ``[N, C, H, W]`` images into a new float32 tensor.

    Grey conversion comes before resizing (fewer channels to interpolate; both are linear per
    pixel, so the order does not change the result). ``crop`` keeps the central ``crop x crop``
    pixels first (torchvision's ``CenterCrop``: the offset rounds the same way), then ``size``
    resizes bilinearly with antialiasing, like torchvision's ``Resize`` on tensors. The input is
    never modified.
    """
    if crop is not None:
        height, width = images.shape[2:]
        top, left = round((height - crop) / 2.0), round((width - crop) / 2.0)
        images = images[:, :, top : top + crop, left : left + crop]
    n, channels, height, width = images.shape
    out_channels = output_channels(channels, grayscale, rgb)
    out_h, out_w = (size, size) if size is not None else (height, width)
    out = torch.empty((n, out_channels, out_h, out_w), dtype=torch.float32)
    per_image = channels * height * width + out_channels * out_h * out_w
    step = max(1, _CHUNK_ELEMENTS // per_image)
    for start in range(0, n, step):
        chunk = images[start : start + step]
        if chunk.dtype == torch.uint8:
            chunk = chunk.to(torch.float32).div_(255.0)
        else:
            chunk = chunk.to(torch.float32)
        if grayscale and channels == 3:
            chunk = to_grayscale(chunk)
        if (out_h, out_w) != (height, width):
            chunk = F.interpolate(
                chunk, size=(out_h, out_w), mode="bilinear", antialias=True, align_corners=False
            )
        out[start : start + step] = chunk  # broadcasting repeats a grey channel for ``rgb``
    return out


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` RGB -> ``[N, 1, H, W]`` luma (a new tensor)."""
    red, green, blue = images.unbind(dim=1)
    luma = red.mul(LUMA_WEIGHTS[0]).add_(green, alpha=LUMA_WEIGHTS[1])
    return luma.add_(blue, alpha=LUMA_WEIGHTS[2]).unsqueeze(1)


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) standard deviation, summed in float64 chunk by chunk.

    A channel that is constant gets std 1 rather than 0, so normalising it cannot divide by zero.
    """
    n, channels = images.shape[:2]
    step = max(1, _CHUNK_ELEMENTS // max(1, images[0].numel()))
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, n, step):
        chunk = images[start : start + step]
        total += chunk.sum(dim=(0, 2, 3), dtype=torch.float64)
        total_sq += chunk.square().sum(dim=(0, 2, 3), dtype=torch.float64)
    count = n * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0.0).sqrt()
    std = torch.where(std < 1e-12, torch.ones_like(std), std)
    return mean, std


def normalize_(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Subtract ``mean`` and divide by ``std`` per channel, in place (length-1 stats broadcast)."""
    shape = (1, -1, 1, 1)
    images.sub_(mean.to(images.dtype).view(shape)).div_(std.to(images.dtype).view(shape))
    return images


def split_indices(n: int, train_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation indices: the validation part is the last ``1 - train_fraction`` of a
    permutation seeded by ``seed``. Each part is returned sorted, so the train part keeps the file
    order; the split depends only on ``n``, ``train_fraction`` and ``seed``."""
    n_train = round(n * train_fraction)
    generator = torch.Generator().manual_seed(seed)
    permutation = torch.randperm(n, generator=generator)
    return permutation[:n_train].sort().values, permutation[n_train:].sort().values


def stratified_split(
    labels: torch.Tensor, test_size: int | float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted train and test indices of a class-stratified split (scikit-learn's, so the split is
    the documented, widely reproduced one); ``test_size`` is a count or a fraction."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(labels.shape[0])
    train, test = train_test_split(
        indices, test_size=test_size, stratify=labels.numpy(), random_state=seed
    )
    return torch.from_numpy(np.sort(train)), torch.from_numpy(np.sort(test))
