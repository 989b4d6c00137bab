"""Repeats over seeds: the mean and range of one measurement, and whether two ranges overlap.

The one place where a measurement over seeds is summed up: the pages' readings, the sweeps'
tables and the figures' bands (:func:`per_epoch`) all use :class:`Spread`.

A difference between two settings whose seed ranges overlap is within the seed-to-seed noise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """One measurement (say, final test accuracy) of several runs that differ only in seed."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("A Spread needs at least one value.")

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def overlaps(self, other: Spread) -> bool:
        """Whether the two ranges share a point: their difference is within the noise."""
        return self.low <= other.high and other.low <= self.high


def spread(values: Iterable[float | None]) -> Spread | None:
    """The Spread of the values that are not None; None when there are none."""
    kept = tuple(float(v) for v in values if v is not None)
    return Spread(kept) if kept else None


def per_epoch(curves: Iterable[Mapping[int, float | None]]) -> dict[int, Spread]:
    """The Spread at each epoch of several seeds' curves (``{epoch: value}``), over the seeds
    that have a value there; epochs in order."""
    values: dict[int, list[float]] = {}
    for curve in curves:
        for epoch, value in curve.items():
            if value is not None:
                values.setdefault(epoch, []).append(float(value))
    return {epoch: Spread(tuple(values[epoch])) for epoch in sorted(values)}
