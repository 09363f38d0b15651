"""U-Net (Ronneberger et al. 2015) with padded convolutions, so the output has the input's size."""

from __future__ import annotations

import math

import torch
from torch import nn

NORMS = ("none", "batch", "group")
INPUT_NORMS = ("none", "image")


def _norm_layer(norm: str, channels: int) -> nn.Module:
    """Batch norm, or group norm with up to 8 groups (the largest divisor of ``channels`` not above 8)."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(math.gcd(8, channels), channels)


def _double_conv(in_channels: int, out_channels: int, norm: str = "none") -> nn.Sequential:
    """Two 3x3 conv + ReLU; with a ``norm`` other than none each conv is followed by that normalisation (and
    has no bias, which the normalisation would cancel)."""
    layers: list[nn.Module] = []
    for channels in (in_channels, out_channels):
        layers.append(nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=norm == "none"))
        if norm != "none":
            layers.append(_norm_layer(norm, out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """The original U-Net: two 3x3 conv + ReLU per level, 2x2 max-pool down, 2x2 transposed conv up,
    skip concatenation, 1x1 head. Channels double at each pooling.

    Transposed convolutions (not bilinear up-sampling) also keep ``Trainer(deterministic=True)``
    usable on CUDA.

    Args:
        in_channels: image channels (3 for RGB).
        num_classes: output channels (logits), 2 for foreground/background segmentation.
        base_channels: channels of the first level (paper: 64; CPU demos use 8-16).
        depth: number of poolings (paper: 4). Inputs must have sides divisible by ``2**depth``.
        norm: normalisation after every 3x3 conv: ``none`` (the original U-Net, the default), ``batch``
            (BatchNorm2d) or ``group`` (GroupNorm, up to 8 groups). Normalised U-Nets train faster early.
        input_norm: ``none`` (the default: the image as the data module gives it, RGB / 255) or ``image``:
            every input is standardised per channel to mean 0 and std 1 over its own pixels before the first
            conv, so a faint (low-contrast) image and a strongly stained one reach the net on the same scale.
            With training crops the statistics are those of the crop, at whole-image evaluation of the image.
    """

    task = "segmentation"

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base_channels: int = 64, depth: int = 4,
                 norm: str = "none", input_norm: str = "none"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm={norm!r} is not one of {', '.join(NORMS)}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm={input_norm!r} is not one of {', '.join(INPUT_NORMS)}")
        if in_channels < 1 or num_classes < 1 or base_channels < 1:
            raise ValueError(
                f"in_channels={in_channels}, num_classes={num_classes} and base_channels={base_channels} "
                "must all be >= 1"
            )
        if depth < 1:
            raise ValueError(f"depth={depth} must be >= 1 (the number of 2x2 poolings)")
        self.depth = depth
        # eps (a std floor of 0.01, 2.5 grey levels) keeps a blank input from having its noise amplified.
        self.input_norm = nn.InstanceNorm2d(in_channels, eps=1e-4) if input_norm == "image" else nn.Identity()
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.encoders = nn.ModuleList()
        channels = in_channels
        for width in widths[:-1]:
            self.encoders.append(_double_conv(channels, width, norm))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(widths[-2], widths[-1], norm)
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth)):
            self.upsamplers.append(nn.ConvTranspose2d(widths[level + 1], widths[level], kernel_size=2, stride=2))
            self.decoders.append(_double_conv(2 * widths[level], widths[level], norm))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiple = 2**self.depth
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ValueError(
                f"U-Net of depth {self.depth} needs input sides divisible by {multiple}, got {tuple(x.shape[-2:])}"
            )
        x = self.input_norm(x)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for upsample, decoder, skip in zip(self.upsamplers, self.decoders, reversed(skips)):
            x = decoder(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)
