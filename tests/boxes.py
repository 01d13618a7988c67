"""Box arithmetic for assertions on hit positions (normalised [x0, y0, x1, y1])."""

from tokensearch.geometry import iou

__all__ = ["iou"]
