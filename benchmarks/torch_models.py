"""The two brain-age models in PyTorch, layer for layer as brainage_tf builds them, for speed comparisons.

slice_lstm: volume -> axial slices -> each resized to 50x50 (bilinear) -> 2D ResNet18 per
slice (slices folded into the batch) -> AvgPool1d(k) over slices -> BiLSTM(64, all
outputs) -> Linear(1). resnet3d: 3D ResNet18 -> Linear(1). Both put InstanceNorm
(affine, as Keras GroupNormalization(groups=channels)) after every convolution, use
bias-free convolutions and the same stem, strides and widths as
`brainage_tf.models.resnet`, so they do the same multiply-adds. Used only by
`benchmarks/train_step.py` (needs the `bench` extra: torch==2.13.0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional

from brainage_tf.defaults import (
    BLOCKS_PER_STAGE,
    DEFAULT_POOL_SIZE,
    DEFAULT_SLICE_SIZE,
    LSTM_UNITS,
    STAGE_FILTERS,
    STAGE_STRIDES,
    STEM_FILTERS,
)


def _conv_norm(rank: int, cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    conv = (nn.Conv2d, nn.Conv3d)[rank - 2](cin, cout, kernel, stride, padding=kernel // 2, bias=False)
    return nn.Sequential(conv, (nn.InstanceNorm2d, nn.InstanceNorm3d)[rank - 2](cout, eps=1e-5, affine=True))


def _float32_head(head: nn.Linear, features: torch.Tensor) -> torch.Tensor:
    # As brainage_tf's age head: float32 even under bf16 autocast.
    with torch.autocast("cpu", enabled=False):
        return head(features.float())


class BasicBlock(nn.Module):
    """Two 3x3(x3) conv-norms and a shortcut (1x1 conv-norm projection when the shape changes)."""

    def __init__(self, rank: int, cin: int, cout: int, stride: int):
        super().__init__()
        self.first = _conv_norm(rank, cin, cout, 3, stride)
        self.second = _conv_norm(rank, cout, cout, 3, 1)
        self.shortcut = (
            _conv_norm(rank, cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output after the final ReLU."""
        return functional.relu(self.shortcut(x) + self.second(functional.relu(self.first(x))))


class ResNet18(nn.Module):
    """ResNet18 features for 2D (rank 2) or 3D (rank 3) inputs, globally average pooled."""

    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank
        self.stem = _conv_norm(rank, 1, STEM_FILTERS, 7, 2)
        self.pool = (nn.MaxPool2d, nn.MaxPool3d)[rank - 2](3, 2, padding=1)
        blocks, cin = [], STEM_FILTERS
        for filters, stride in zip(STAGE_FILTERS, STAGE_STRIDES, strict=True):
            for block in range(BLOCKS_PER_STAGE):
                blocks.append(BasicBlock(rank, cin, filters, stride if block == 0 else 1))
                cin = filters
        self.blocks = nn.Sequential(*blocks)
        self.features = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 1, *spatial) -> (batch, 512)."""
        x = self.blocks(self.pool(functional.relu(self.stem(x))))
        return x.mean(dim=tuple(range(2, 2 + self.rank)))


class SliceLSTM(nn.Module):
    """2D-ResNet18+LSTM on axial slices of a (batch, x, y, z) volume."""

    def __init__(
        self,
        volume_shape: Sequence[int],
        slice_size: Sequence[int] = DEFAULT_SLICE_SIZE,
        pool_size: int = DEFAULT_POOL_SIZE,
    ):
        super().__init__()
        self.slice_size, self.pool_size = tuple(slice_size), pool_size
        self.encoder = ResNet18(2)
        self.lstm = nn.LSTM(self.encoder.features, LSTM_UNITS, batch_first=True, bidirectional=True)
        steps = volume_shape[2] // pool_size
        self.age = nn.Linear(steps * 2 * LSTM_UNITS, 1)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        """(batch, x, y, z) -> (batch, 1)."""
        batch, x, y, z = volume.shape
        slices = volume.permute(0, 3, 1, 2).reshape(batch * z, 1, x, y)
        slices = functional.interpolate(slices, size=self.slice_size, mode="bilinear", align_corners=False)
        features = self.encoder(slices).reshape(batch, z, -1)
        pooled = functional.avg_pool1d(features.transpose(1, 2), self.pool_size).transpose(1, 2)
        sequence, _ = self.lstm(pooled)
        return _float32_head(self.age, sequence.flatten(1))


class ResNet3D(nn.Module):
    """3D ResNet18 on a (batch, x, y, z) volume."""

    def __init__(self):
        super().__init__()
        self.encoder = ResNet18(3)
        self.age = nn.Linear(self.encoder.features, 1)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        """(batch, x, y, z) -> (batch, 1)."""
        return _float32_head(self.age, self.encoder(volume[:, None]))


# Registered model name -> its PyTorch twin, built from the volume shape.
TWINS = {"slice_lstm": SliceLSTM, "resnet3d": lambda volume_shape: ResNet3D()}


def build(model_name: str, volume_shape: Sequence[int]) -> nn.Module:
    """The PyTorch twin of `brainage_tf.models.build_model(model_name, volume_shape)` at full width.

    Raises:
        ValueError: The model has no twin here.
    """
    if model_name not in TWINS:
        raise ValueError(f"no PyTorch twin of {model_name!r}; twins exist of {', '.join(TWINS)}.")
    return TWINS[model_name](volume_shape)


def training_step(model: nn.Module, precision: str):
    """An Adam/MAE training step on (volumes, ages); bf16 autocast when precision is mixed_bfloat16."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    dtype = torch.bfloat16 if precision == "mixed_bfloat16" else None

    def step(volumes: torch.Tensor, ages: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            predicted = model(volumes)[:, 0]
        functional.l1_loss(predicted.float(), ages).backward()
        optimizer.step()

    return step
