"""YOLLO-style single-scale cell detector (in the spirit of van Rijthoven et al. 2018).

The paper describes YOLLO only as "7 convolutional layers with batch normalisation and max pooling";
the architecture below is this project's design in that spirit:

- Input: RGB (N, 3, H, W), H and W divisible by the stride ``2**depth``.
- Body: six 3x3 conv + batch norm + LeakyReLU(0.1) layers; the first ``depth`` of them are each
  followed by a 2x2 max pool. Layer i has ``c * 2**min(i, depth, 3)`` channels (c = ``base_channels``):
  ``c, 2c, 4c, 8c, 8c, 8c`` at depth 3.
- Head: the 7th conv, 1x1, gives 5 channels per grid cell.
- Output: (N, 5, H / stride, W / stride), per cell ``(t_obj, t_x, t_y, t_w, t_h)``: the objectness logit,
  the box centre offsets inside the cell (``sigmoid(t_x)``, ``sigmoid(t_y)`` in [0, 1] of a cell) and
  the box size ``anchor * exp(t_w)``, ``anchor * exp(t_h)`` in pixels (see ``postprocess.detection``).

With ``depth=3`` (stride 8) and c=16 the receptive field of a cell is 70 pixels: enough context for
nuclei of 10-40 pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from .unet import INPUT_NORMS

OUTPUTS_PER_CELL = 5  # objectness logit, centre x, centre y, log width, log height


def _conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.1, inplace=True),
    )


class YOLLO(nn.Module):
    """Seven-layer YOLO-style detector: one objectness logit and one box per grid cell.

    Args:
        in_channels: image channels (3 for RGB).
        base_channels: channels of the first conv (default 16; the GPU anchor used 32).
        depth: number of 2x2 max pools in 1..5; the grid stride is ``2**depth`` (default 3: stride 8,
            one cell per 8x8 pixels). Choose it so that two cell centres rarely fall into one cell
            (stride <= the typical nucleus diameter).
        anchor: reference box side in pixels; a raw size output of 0 means a box of this side.
        prior_probability: initial objectness probability of every cell (the head's bias), so early
            training is not dominated by the many background cells.
        input_norm: ``none`` (the default: RGB / 255 as the data module gives it) or ``image``: every input
            standardised per channel over its own pixels before the first conv, as ``UNet(input_norm="image")``.
    """

    task = "detection"

    def __init__(self, in_channels: int = 3, base_channels: int = 16, depth: int = 3, anchor: float = 16.0,
                 prior_probability: float = 0.05, input_norm: str = "none"):
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm={input_norm!r} is not one of {', '.join(INPUT_NORMS)}")
        if in_channels < 1 or base_channels < 1:
            raise ValueError(f"in_channels={in_channels} and base_channels={base_channels} must be >= 1")
        if not 1 <= depth <= 5:
            raise ValueError(f"depth={depth!r} must be an integer in 1..5 (the number of 2x2 max pools; stride 2**depth)")
        if not anchor > 0:
            raise ValueError(f"anchor={anchor} must be > 0 (pixels)")
        if not 0.0 < prior_probability < 1.0:
            raise ValueError(f"prior_probability={prior_probability} must lie in (0, 1)")
        self.depth, self.stride, self.anchor = int(depth), 2 ** int(depth), float(anchor)
        # the same floor as the U-Net's: a blank tile keeps its noise small
        self.input_norm = nn.InstanceNorm2d(in_channels, eps=1e-4) if input_norm == "image" else nn.Identity()
        layers: list[nn.Module] = []
        channels = in_channels
        for index in range(6):
            width = base_channels * 2 ** min(index, depth, 3)
            layers.append(_conv_bn(channels, width))
            if index < depth:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels, OUTPUTS_PER_CELL, kernel_size=1)
        with torch.no_grad():
            self.head.bias.zero_()
            self.head.bias[0] = torch.logit(torch.tensor(prior_probability))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2] % self.stride or images.shape[-1] % self.stride:
            raise ValueError(f"input {tuple(images.shape[-2:])} must have sides divisible by the stride {self.stride}")
        return self.head(self.body(self.input_norm(images)))
