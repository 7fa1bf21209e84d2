"""ResNet-18 as the Model Zoos dataset trained it: a 3x3 stride-1 stem without max-pooling.

The Model Zoos ResNet-18 zoos (CIFAR-10, CIFAR-100, Tiny ImageNet) use torchvision's ResNet-18
(BasicBlock, [2, 2, 2, 2]) with the 7x7 stride-2 stem replaced by a 3x3 stride-1 convolution
without bias and the max-pool removed, so small images keep their resolution. This module builds
that network with the same module names as torchvision (``conv1``, ``bn1``,
``layer1.0.conv1`` ... ``fc``), so state-dict keys line up with checkpoints of those zoos. Its
BatchNorm running statistics are part of the model: the store keeps them beside the parameters
(layout entries marked ``buffer``), and ``Zoo.model`` restores them.

11,173,962 parameters for 10 classes on 3x32x32 (plus 9,620 buffer values); the head is the only
part that depends on the class count.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a residual connection (1x1 projection when the
    shape changes)."""

    def __init__(self, channels_in: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or channels_in != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(channels_in, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = functional.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return functional.relu(out + shortcut)


class ResNet18(nn.Module):
    """ResNet-18 with the small-image stem; any input size (global average pooling)."""

    def __init__(self, channels_in: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths, stages, previous = (64, 128, 256, 512), [], 64
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(previous, width, stride),
                                        BasicBlock(width, width, 1)))  # fmt: skip
            previous = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = functional.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(functional.adaptive_avg_pool2d(x, 1), 1))


def build_resnet18(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return ResNet18(int(input_shape[0]), int(num_classes))
