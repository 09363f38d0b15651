"""Annealing schedules of the ECE loss, in epochs or in fractions of the planned training length.

A schedule moves a value from ``start`` to ``end`` along a sigmoid centred at ``midpoint`` with
temperature ``width`` (``width=0`` is a step at ``midpoint``). With ``unit="fraction"`` the time axis
is ``epoch / max_epochs``, so a 30-epoch CPU run and a 300-epoch GPU run follow the same shape; with
``unit="epochs"`` it is the epoch itself (the paper: midpoints 50 and 150 of 300, width 10).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

UNITS = ("epochs", "fraction")


@dataclass(frozen=True)
class SigmoidSchedule:
    """``value(t) = start + (end - start) * sigmoid((t - midpoint) / width)``.

    Args:
        start: value long before ``midpoint``.
        end: value long after ``midpoint``.
        midpoint: where the value is halfway, in ``unit``.
        width: sigmoid temperature in ``unit`` (>= 0; 0 makes a step: ``start`` before, ``end`` from
            ``midpoint`` on).
        unit: ``epochs`` or ``fraction`` (of ``max_epochs``).
    """

    start: float
    end: float
    midpoint: float = 0.0
    width: float = 0.0
    unit: str = "fraction"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"schedule unit={self.unit!r} is not one of {', '.join(UNITS)}")
        if not self.width >= 0:
            raise ValueError(f"schedule width={self.width} must be >= 0")

    @classmethod
    def constant(cls, value: float) -> SigmoidSchedule:
        return cls(start=value, end=value)

    @classmethod
    def build(cls, spec: float | dict[str, Any] | SigmoidSchedule) -> SigmoidSchedule:
        """A schedule from a number (constant), a dict of the fields, or a schedule."""
        if isinstance(spec, SigmoidSchedule):
            return spec
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            return cls.constant(float(spec))
        if isinstance(spec, dict):
            unknown = set(spec) - {"start", "end", "midpoint", "width", "unit"}
            if unknown:
                raise ValueError(f"unknown schedule field(s) {', '.join(sorted(unknown))}; valid: start, end, "
                                 "midpoint, width, unit")
            return cls(**spec)
        raise TypeError(f"a schedule is a number or a dict with start/end/midpoint/width/unit, got {spec!r}")

    def time(self, epoch: float, max_epochs: int | None) -> float:
        if self.unit == "epochs":
            return float(epoch)
        if not max_epochs or max_epochs < 1:
            raise ValueError("a schedule in fractions of training needs trainer.max_epochs >= 1 "
                             f"(got {max_epochs}); give midpoint/width in epochs with unit=epochs instead")
        return float(epoch) / float(max_epochs)

    def __call__(self, epoch: float, max_epochs: int | None = None) -> float:
        if self.start == self.end:
            return float(self.start)
        t = self.time(epoch, max_epochs)
        if self.width == 0:
            return float(self.end if t >= self.midpoint else self.start)
        z = (t - self.midpoint) / self.width
        weight = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        return float(self.start + (self.end - self.start) * weight)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
