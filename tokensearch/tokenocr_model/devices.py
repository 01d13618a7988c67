"""Device and dtype choice for the models: resolve the settings' strings once, validate them loudly.

Supported combinations (anything else is refused with a message saying what to use instead):

| device        | dtypes                           | notes                                              |
|---------------|----------------------------------|----------------------------------------------------|
| ``cpu``       | ``float32``, ``bfloat16``        | float16 matmuls on CPU are slow or missing         |
| ``cpu``       | ``int8`` (mini model only)       | static int8 convs, see ``mini_fast.quantize_int8`` |
| ``cuda[:N]``  | ``bfloat16``, ``float16``, ``float32`` | bf16 is the official inference dtype         |

``auto`` (the settings' default) means bfloat16 where the hardware computes it natively — CUDA GPUs
with bf16 support, and CPUs with AVX512-BF16 or AMX (there oneDNN convolutions and matmuls run 2-2.5x
faster than in float32) — and float32 everywhere else, where bf16 would be emulated and slower. The mini
model's convolutions take int8 on every CPU (``MiniEncoder``: the numerics its thresholds were calibrated
in; fastest with int8 dot products, VNNI, and on plain AVX2 by oneDNN's int8 kernels, :func:`int8_engine`);
in float32 they take Winograd 3x3 convolutions where NNPACK runs (:func:`winograd_available`).

Nothing here defaults to CUDA: the caller's settings decide.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from pathlib import Path

import torch

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}
_ALLOWED = {
    "cpu": (torch.float32, torch.bfloat16),
    "cuda": (torch.bfloat16, torch.float16, torch.float32),
}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"`` / ``"cuda"`` / ``"cuda:N"`` -> :class:`torch.device`, checking that it exists."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type not in _ALLOWED:
        raise ValueError(f"unsupported device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} requested but CUDA is not available here "
                "(torch built without CUDA or no GPU visible); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) are visible")
    return dev


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty elsewhere, which selects the safe paths."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    return frozenset(
        next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    )


def cpu_has_int8_dot() -> bool:
    """True when this CPU has int8 dot-product instructions (x86 VNNI, AVX512 or AVX, or AMX-INT8)."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def int8_engine() -> str:
    """torch's quantized engine for the mini model's int8 convolutions: oneDNN on CPUs without int8 dot
    products, where it runs the net ~1.3x faster than fbgemm's (which torch's default ``x86`` engine
    picks for these convolutions) with the same features (cosine 1.0, the same activation ranges);
    elsewhere torch's default (``x86``, with which the speed figures of VNNI CPUs were measured; BENCHMARKS.md,
    "Precision and dtype")."""
    if (
        platform.machine().lower() in ("x86_64", "amd64")  # measured on x86 only; Arm keeps torch's choice
        and not cpu_has_int8_dot()
        and "onednn" in torch.backends.quantized.supported_engines
    ):
        return "onednn"
    return torch.backends.quantized.engine  # torch's own choice: x86 on x86 builds, qnnpack on Arm


def cpu_has_native_bf16() -> bool:
    """True when this CPU executes bf16 dot products in hardware (x86 AVX512-BF16 / AMX-BF16)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags()) and torch.backends.mkldnn.is_available()


@functools.lru_cache(maxsize=1)
def winograd_available() -> bool:
    """True when torch's NNPACK can run float32 3x3 convolutions by Winograd here (x86 AVX2 or ARM NEON
    builds): 2.5x faster than oneDNN's direct ones on a 96-channel layer on an AVX2 CPU. Asking torch also
    initializes NNPACK, without which its convolution fails; a tiny convolution checks the result."""
    try:
        if not torch._nnpack_available():
            return False
        x, w, b = torch.randn(1, 4, 5, 6), torch.randn(3, 4, 3, 3), torch.randn(3)
        y = torch._nnpack_spatial_convolution(x, w, b, [1, 1], [1, 1])
        return bool(torch.allclose(y, torch.nn.functional.conv2d(x, w, b, padding=1), atol=1e-4))
    except (RuntimeError, AttributeError):
        return False


def auto_dtype(device: torch.device) -> torch.dtype:
    """The fastest dtype that keeps the features faithful on ``device`` (see the module docstring)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """A dtype name (``auto``, ``float32``, ``bfloat16``, ``float16`` or their short forms) valid on ``device``."""
    if isinstance(dtype, str) and dtype.lower() == "auto":
        return auto_dtype(device)
    dt: torch.dtype | None
    if isinstance(dtype, torch.dtype):
        dt = dtype
    else:
        dt = _DTYPES.get(str(dtype).lower())
        if str(dtype).lower() == "int8":
            raise ValueError(
                "dtype int8 is available for the mini model on the CPU only; use auto, float32 or bfloat16"
            )
        if dt is None:
            raise ValueError(f"unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16")
    allowed = _ALLOWED[device.type]
    if dt not in allowed:
        names = ", ".join(str(a).removeprefix("torch.") for a in allowed)
        raise ValueError(
            f"dtype {str(dt).removeprefix('torch.')} is not supported on {device.type}; use one of: {names}"
        )
    return dt


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision for reduced dtypes on GPU (norms and softmax stay in fp32); a no-op otherwise."""
    if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16):
        return torch.autocast(device_type="cuda", dtype=dtype)
    return contextlib.nullcontext()
