"""Box arithmetic in normalised page coordinates ([x0, y0, x1, y1], origin top-left)."""

from __future__ import annotations

from collections.abc import Sequence

Box = Sequence[float]


def intersection(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def area(a: Box) -> float:
    return max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])


def iou(a: Box, b: Box) -> float:
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def mostly_inside(a: Box, b: Box, share: float = 0.5) -> bool:
    """More than ``share`` of the smaller box lies inside the other one (the same place, twice)."""
    inter = intersection(a, b)
    return inter > 0 and inter > share * min(area(a), area(b))
