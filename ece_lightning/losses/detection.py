"""YOLO-style detection loss over a grid of cells, with a pluggable objectness loss.

Each label box is assigned to the cell holding its centre (one box per cell: where several centres
fall into one cell the largest box wins and the others are left unassigned). Per image batch:

    L = lambda_objects * mean_{assigned} obj_i + lambda_background * mean_{other} obj_i       (normalize="groups")
        + lambda_box * mean_{assigned} [ (sigmoid(t_x) - o_x)^2 + (sigmoid(t_y) - o_y)^2
                                         + (t_w - log(w / anchor))^2 + (t_h - log(h / anchor))^2 ]

(``normalize="cells"``: both objectness sums are divided by the number of all cells instead.)

where obj_i is the objectness loss of cell i against target 1 (assigned) or 0 (no annotated box) and
(o_x, o_y) the centre offset inside the cell. The cells with no annotated box are where sparse
annotation hurts: with ``ce`` every one of them is a negative; with ``ece`` (binary
ExclusiveCrossEntropy) the exclusivity test and negative sampling act on them, driven by the shared
``LossSchedules`` callback (the objectness loss is a sub-module, so the callback finds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .components import split_by_annotation


@dataclass
class GridTargets:
    """Targets of a (B, Gh, Gw) grid: ``objectness`` float 0/1, ``assigned`` bool (cells responsible for a
    box), ``box`` (B, 4, Gh, Gw) regression targets (o_x, o_y, log w/anchor, log h/anchor; 0 elsewhere)
    and ``unassigned`` the number of label boxes that lost their cell to a larger one."""

    objectness: torch.Tensor
    assigned: torch.Tensor
    box: torch.Tensor
    unassigned: int


def encode_targets(boxes: torch.Tensor, image_index: torch.Tensor, batch_size: int, grid: tuple[int, int],
                   stride: int, anchor: float) -> GridTargets:
    """Grid targets of label boxes.

    Args:
        boxes: (K, 4) (x0, y0, x1, y1) in pixels (pixel-edge coordinates, as ``data.targets.instance_boxes``).
        image_index: (K,) batch row of each box.
        batch_size: B.
        grid: (Gh, Gw), the model's output grid.
        stride: pixels per cell.
        anchor: reference box side in pixels (the model's).
    """
    grid_h, grid_w = grid
    device = boxes.device
    objectness = torch.zeros((batch_size, grid_h, grid_w), device=device)
    box = torch.zeros((batch_size, 4, grid_h, grid_w), device=device)
    if not len(boxes):
        return GridTargets(objectness, objectness.bool(), box, 0)
    boxes = boxes.float()
    size = (boxes[:, 2:] - boxes[:, :2]).clamp_min(1.0)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / stride
    cell_x = centre[:, 0].floor().long().clamp_(0, grid_w - 1)
    cell_y = centre[:, 1].floor().long().clamp_(0, grid_h - 1)
    cell = (image_index * grid_h + cell_y) * grid_w + cell_x
    # One box per cell, deterministically: the largest area, then the first box among equals.
    area = size.prod(dim=1)
    cells = batch_size * grid_h * grid_w
    best_area = torch.zeros(cells, device=device).scatter_reduce_(0, cell, area, reduce="amax", include_self=False)
    candidate = area == best_area[cell]
    order = torch.arange(len(boxes), device=device)
    first = torch.full((cells,), len(boxes), device=device, dtype=torch.long)
    first.scatter_reduce_(0, cell[candidate], order[candidate], reduce="amin", include_self=True)
    winner = order == first[cell]
    cell, centre, size = cell[winner], centre[winner], size[winner]
    objectness.view(-1)[cell] = 1.0
    offsets = torch.stack([centre[:, 0] - cell_x[winner], centre[:, 1] - cell_y[winner],
                           torch.log(size[:, 0] / anchor), torch.log(size[:, 1] / anchor)], dim=1)
    flat_box = box.permute(0, 2, 3, 1).reshape(-1, 4)
    flat_box[cell] = offsets
    box = flat_box.reshape(batch_size, grid_h, grid_w, 4).permute(0, 3, 1, 2).contiguous()
    return GridTargets(objectness, objectness.bool(), box, int((~winner).sum()))


class DetectionLoss(nn.Module):
    """Objectness on every cell plus box regression on cells responsible for a label box.

    Args:
        objectness: a registry loss config (``{"name": "ece", ...}``, ``ce``, ``focal``) or module for binary
            logits; it is built with ``reduction="none"`` and weighted per cell here.
        stride: pixels per grid cell (the model's).
        anchor: reference box side in pixels (the model's).
        lambda_objects: weight of the objectness term of cells with an annotated box (paper: 1).
        lambda_background: weight of the objectness term of every other cell (paper: 10).
        lambda_box: weight of the box regression term.
        normalize: ``groups`` (default: each objectness group averaged over its own cells) or ``cells`` (one
            mean over all cells; with the paper's 1:10 weights no score reaches 0.5, measured).
        regress_size: whether box sizes are regressed (False: centres only, for detectors whose boxes all get one
            fixed side, e.g. trained from points of unknown cell size).
    """

    def __init__(self, objectness: dict[str, Any] | nn.Module, stride: int, anchor: float,
                 lambda_objects: float = 1.0, lambda_background: float = 10.0, lambda_box: float = 1.0,
                 normalize: str = "groups", regress_size: bool = True):
        super().__init__()
        if isinstance(objectness, dict):
            objectness = self.objectness_loss(objectness)
        for name, value in (("lambda_objects", lambda_objects), ("lambda_background", lambda_background),
                            ("lambda_box", lambda_box)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name}={value!r} must be a number >= 0")
        if normalize not in ("cells", "groups"):
            raise ValueError(f"normalize={normalize!r} must be cells or groups")
        self.objectness = objectness
        self.stride, self.anchor = int(stride), float(anchor)
        self.lambda_objects, self.lambda_background = float(lambda_objects), float(lambda_background)
        self.lambda_box = float(lambda_box)
        self.normalize = normalize
        self.regress_size = bool(regress_size)

    @staticmethod
    def objectness_loss(config: dict[str, Any]) -> nn.Module:
        """The per-cell objectness loss of a loss registry config (built with ``reduction="none"``)."""
        from .registry import LOSSES

        return LOSSES.build({**config, "reduction": "none"})

    def forward(self, outputs: torch.Tensor, boxes: torch.Tensor, image_index: torch.Tensor,
                pixels: torch.Tensor | None = None, components: bool = False
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``outputs`` (B, 5, Gh, Gw) of the model, label ``boxes`` (K, 4) x0y0x1y1 pixels with their
        ``image_index``; returns the total loss and its parts (detached): ``objectness``, ``box`` and, with
        ``components`` (LossDynamics), the mean objectness term of cells with a box (``objectness_obj``) and of
        the others (``objectness_background``; NaN when empty).
        ``pixels`` (B, H, W) are the samples' pixel ids, needed by an objectness loss with per-pixel state
        (ELR): a cell's state lives on the stride x stride source pixels it covers."""
        if outputs.dim() != 4 or outputs.shape[1] != 5:
            raise ValueError(f"detection outputs must be (B, 5, Gh, Gw), got {tuple(outputs.shape)}")
        outputs = outputs.float()
        targets = encode_targets(boxes, image_index, outputs.shape[0], tuple(outputs.shape[-2:]), self.stride,
                                 self.anchor)
        if getattr(self.objectness, "requires_pixels", False):
            # A cell's state lives on the source pixels it covers (all stride x stride of them), so it is found
            # again wherever a later crop puts the grid.
            cell_pixels = None
            if pixels is not None:
                batch, grid_h, grid_w, s = pixels.shape[0], outputs.shape[-2], outputs.shape[-1], self.stride
                cell_pixels = (pixels.reshape(batch, grid_h, s, grid_w, s).permute(0, 1, 3, 2, 4)
                               .reshape(batch, grid_h, grid_w, s * s))
            per_cell = self.objectness(outputs[:, 0], targets.objectness, pixels=cell_pixels)
        else:
            per_cell = self.objectness(outputs[:, 0], targets.objectness)
        if self.normalize == "cells":
            weight = torch.where(targets.assigned, self.lambda_objects, self.lambda_background)
            objectness = (per_cell * weight).mean()
        else:
            n_objects = targets.assigned.sum().clamp_min(1)
            n_background = (~targets.assigned).sum().clamp_min(1)
            objectness = (self.lambda_objects * per_cell[targets.assigned].sum() / n_objects
                          + self.lambda_background * per_cell[~targets.assigned].sum() / n_background)
        predicted = outputs[:, 1:].permute(0, 2, 3, 1)[targets.assigned]
        if len(predicted):
            wanted = targets.box.permute(0, 2, 3, 1)[targets.assigned]
            box = F.mse_loss(torch.sigmoid(predicted[:, :2]), wanted[:, :2], reduction="sum")
            if self.regress_size:
                box = box + F.mse_loss(predicted[:, 2:], wanted[:, 2:], reduction="sum")
            else:
                box = box + predicted[:, 2:].sum() * 0.0  # the size outputs stay in the graph (DDP)
            box = box / len(predicted)
        else:
            box = outputs[:, 1:].sum() * 0.0  # keeps the graph (and DDP) intact on a batch without boxes
        total = objectness + self.lambda_box * box
        parts = {"objectness": objectness.detach(), "box": box.detach()}
        if components:  # the objectness terms of cells with a box ("obj") and of the others ("background")
            groups = split_by_annotation(per_cell, targets.assigned)
            parts.update(objectness_obj=groups["obj"], objectness_background=groups["background"])
        return total, parts
