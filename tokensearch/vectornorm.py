"""Unit vectors: the one numeric helper the model package and storage share.

Cells and token vectors are compared by cosine, so both sides normalise to unit length. It lives here,
outside both packages (it imports only numpy), so that storage does not import the model package.
"""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-8) -> np.ndarray:
    """Unit-normalise along ``axis`` (zero vectors stay zero)."""
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, eps)
