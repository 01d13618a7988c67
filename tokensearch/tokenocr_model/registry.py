"""Model registry: a model spec string -> a :class:`TokenEncoder`.

Specs: ``mini`` (the embedded default, weights shipped in the package; ``mini:/path/to/weights-dir`` for a
retrained one) and ``tokenocr:/path/to/checkpoint-folder`` (the official TokenOCR / TokenFD weights).
Builders are imported lazily so that choosing one model never imports another's dependencies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ModelLoadError
from .interface import CalibrationPages, TokenEncoder
from .mini_files import mini_paths


def weight_files(spec: str) -> list[Path] | None:
    """The files a model spec loads (to tell, without loading it, whether a cached query side is current)."""
    family, _, arg = spec.partition(":")
    if family == "mini":
        wfile, tfile, _ = mini_paths(arg or None)
        return [wfile, tfile]
    return None


def _build_mini(
    arg: str | None, device: str, dtype: str, cell_pool: int | None, int8_pages: CalibrationPages | None
) -> TokenEncoder:
    from .mini_encoder import load_mini

    return load_mini(arg, device=device, dtype=dtype, int8_pages=int8_pages)


def _build_tokenocr(
    arg: str | None, device: str, dtype: str, cell_pool: int | None, int8_pages: CalibrationPages | None
) -> TokenEncoder:
    if not arg:
        raise ModelLoadError("the tokenocr model needs a checkpoint folder: --model tokenocr:/path/to/TokenOCR")
    from .tokenocr import load_tokenocr

    return load_tokenocr(arg, device=device, dtype=dtype, cell_pool=cell_pool)


_BUILDERS: dict[str, Callable[[str | None, str, str, int | None, CalibrationPages | None], TokenEncoder]] = {
    "mini": _build_mini,
    "tokenocr": _build_tokenocr,
}


def available_models() -> list[str]:
    return sorted(_BUILDERS)


def create_encoder(
    spec: str,
    device: str = "cpu",
    dtype: str = "float32",
    cell_pool: int | None = None,
    int8_pages: CalibrationPages | None = None,
) -> TokenEncoder:
    """Build the encoder named by ``spec`` (``family`` or ``family:argument``). ``cell_pool`` averages
    k x k cells of models with very fine grids (TokenOCR; None = the model's default). ``int8_pages``:
    the pages int8 inference calibrates on (mini; without them ``dtype="auto"`` never picks int8 and
    ``"int8"`` is refused); the engine passes :func:`tokensearch.samples.calibration_pages`."""
    family, _, arg = spec.partition(":")
    builder = _BUILDERS.get(family)
    if builder is None:
        raise ModelLoadError(
            f"unknown model {spec!r}; valid models: {', '.join(available_models())} "
            "(e.g. --model mini, --model tokenocr:/path/to/checkpoint)"
        )
    try:
        return builder(arg or None, device, dtype, cell_pool, int8_pages)
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError) as e:  # missing files, bad config, unexpected/missing weights
        raise ModelLoadError(f"cannot load model {spec!r}: {e}") from e
