"""Training-time image augmentation, seeded per run: what the Model Zoos ResNet-18 zoos train with.

``crop_flip`` is torchvision's ``RandomCrop(size, padding=4)`` followed by
``RandomHorizontalFlip()`` (the CIFAR-10/100 zoos); ``flip_rotate`` is ``RandomHorizontalFlip()``
followed by ``RandomRotation(20)`` (nearest neighbour, zero fill; the Tiny ImageNet zoo). Both are
applied to a whole batch at once with every draw taken from the
generator it is given (one per run and epoch, see ``modelzoo.seeding``), so a model sees the same
augmented images whichever worker trains it. One difference from the torchvision pipeline: our
images are normalised before they reach the trainer, so the padding is the normalised zero (the
dataset's mean colour where ``normalize: dataset``) rather than black.
"""

from __future__ import annotations

import torch
from torch.nn import functional

AUGMENTATIONS = ("none", "crop_flip", "flip_rotate")
ROTATION_DEGREES = 20.0
PADDING = 4


def crop_flip(
    images: torch.Tensor, generator: torch.Generator, padding: int = PADDING
) -> torch.Tensor:
    """A random ``H x W`` crop of each zero-padded image, mirrored left-right with p = 0.5."""
    n, c, h, w = images.shape
    padded = functional.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    device = images.device
    rows = (dy[:, None] + torch.arange(h)).to(device)  # [n, h]
    cols = (dx[:, None] + torch.arange(w)).to(device)  # [n, w]
    cols = torch.where(flip.to(device)[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def flip_rotate(
    images: torch.Tensor, generator: torch.Generator, degrees: float = ROTATION_DEGREES
) -> torch.Tensor:
    """Mirror left-right with p = 0.5, then rotate by a uniform angle in [-degrees, degrees]
    about the centre (nearest neighbour, zero outside), each image with its own draw."""
    n = images.shape[0]
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * degrees * torch.pi / 180
    flipped = torch.where(flip[:, None, None, None], images.flip(3), images)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = functional.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return functional.grid_sample(flipped, grid, mode="nearest", padding_mode="zeros",
                                  align_corners=False)  # fmt: skip


def augment_batch(name: str, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if name == "none":
        return images
    if name == "crop_flip":
        return crop_flip(images, generator)
    if name == "flip_rotate":
        return flip_rotate(images, generator)
    raise ValueError(f"unknown augmentation {name!r}; choose one of: {', '.join(AUGMENTATIONS)}")
