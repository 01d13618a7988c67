"""Fast inference paths of the mini model on CPUs; the net they compute is :mod:`.mini`'s.

- :func:`fuse_conv_bn` folds every BatchNorm into its conv (inference only);
- :func:`infer_trunk`: in-place ReLUs and residual adds, and the 3x3 convs at 1/8 by NNPACK's Winograd
  transform where that is fastest (float32 on CPUs without int8 dot products);
- :func:`quantize_int8`: a static int8 copy of the net, calibrated on fixed pages the caller gives
  (:func:`int8_calibration_samples`), for CPUs with int8 dot products;
- :func:`ink_frames`: the bands of text a page's net must see; cells farther from ink than the receptive
  field see only paper and are not computed.

Which path a :class:`~.mini_encoder.MiniEncoder` takes is decided by ``--dtype`` (see :mod:`.devices`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TypeVar, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .mini import VisionEncoder, image_to_tensor, pad_to_stride

Pair = tuple[int, int]
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def fuse_conv_bn(model: ModuleT) -> ModuleT:
    """Fold every eval-mode ``Sequential(Conv2d(bias=False), BatchNorm2d)`` into one Conv2d (inference)."""
    for name, mod in list(model.named_children()):
        if (
            isinstance(mod, nn.Sequential)
            and len(mod) == 2
            and isinstance(mod[0], nn.Conv2d)
            and isinstance(mod[1], nn.BatchNorm2d)
        ):
            conv, bn = mod[0], mod[1]
            # conv_bn builds 2-d convs and BatchNorms with weights and running statistics; torch types
            # these as optional and of any rank
            fused = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                cast(Pair, conv.kernel_size),
                cast(Pair, conv.stride),
                cast(Pair, conv.padding),
                cast(Pair, conv.dilation),
                conv.groups,
                bias=True,
            )
            weight, bias, mean, var = cast(
                tuple[torch.Tensor, ...], (bn.weight, bn.bias, bn.running_mean, bn.running_var)
            )
            scale = weight / torch.sqrt(var + bn.eps)
            fused.weight.data = conv.weight.data * scale.reshape(-1, 1, 1, 1)
            cast(torch.Tensor, fused.bias).data = bias.data - mean * scale
            setattr(model, name, fused)
        else:
            fuse_conv_bn(mod)
    return model


def infer_trunk(vision: VisionEncoder, x: torch.Tensor, winograd: bool = False) -> torch.Tensor:
    """:meth:`VisionEncoder.trunk` for inference (no autograd): ReLUs and residual adds in place (one
    memory pass less per layer, ~8 % of a page on CPU), and with ``winograd`` the 3x3 convs at 1/8 — half
    of the net's multiply-adds — by NNPACK's Winograd transform (float32, NCHW), the 1xk ones by oneDNN
    (NHWC, its fastest layout for them). On CPUs without int8 dot products this is the fastest path, ahead
    of oneDNN alone and of int8; the head output differs from :meth:`~VisionEncoder.trunk`'s by ~1e-4
    (BENCHMARKS.md, "Precision and dtype")."""
    x = 1.0 - x
    x = F.relu(vision.stem(x), inplace=True)
    x = F.relu(vision.conv4(x), inplace=True)
    for b in vision.quarter:
        x = F.relu(cast(nn.Module, b.conv)(x), inplace=True).add_(x)
    x = F.relu(vision.down8(x), inplace=True)
    for b in vision.blocks:
        conv = cast(nn.Conv2d, b.conv)  # one Conv2d once fuse_conv_bn has folded its BatchNorm
        if winograd and conv.kernel_size == (3, 3) and conv.dilation == (1, 1):
            x = x.contiguous()
            y = torch._nnpack_spatial_convolution(x, conv.weight, conv.bias, list(cast(Pair, conv.padding)), [1, 1])
        else:
            if winograd:
                x = x.contiguous(memory_format=torch.channels_last)
            y = conv(x)
        x = F.relu(y, inplace=True).add_(x)
    if winograd:
        x = x.contiguous(memory_format=torch.channels_last)
    return vision.head(x)


class _Trunk(nn.Module):
    """The vision net up to its head output: what int8 quantization traces (the split stays in float)."""

    def __init__(self, vision: VisionEncoder):
        super().__init__()
        self.vision = vision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vision.trunk(x)


def quantize_int8(vision: VisionEncoder, samples: Sequence[torch.Tensor], engine: str) -> nn.Module:
    """Static int8 copy of a (conv-BN-fused, float32) vision net for CPUs without native bf16.

    There float32 convolutions already run at the CPU's peak FLOP rate, so only fewer bits go faster:
    int8 weights (per channel) and activations (ranges from histogram observers run on ``samples``,
    (1, 1, H, W) page tensors) make the net faster where the CPU has int8 dot products, with features
    close to float32's (BENCHMARKS.md, "Precision and dtype"). The output is dequantized float.
    ``engine``: torch's quantized engine whose kernels the convolutions are packed for (and then run by,
    whatever the process-wide setting is later; :func:`.devices.int8_engine`); the activation ranges are
    the same for every engine. About 1 s once per process."""
    import copy

    import torch.fx.config
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    # FX records a symbolized stack trace per node by default; symbolizing imports half of torch's
    # compiler stack (~2.5 s of the ~3.5 s this took). The flag is read when the tracer is created.
    emit = torch.fx.config.do_not_emit_stack_traces
    before = torch.backends.quantized.engine
    with warnings.catch_warnings():  # torch.ao's FX API warns that it moves to torchao
        warnings.simplefilter("ignore")
        try:
            torch.fx.config.do_not_emit_stack_traces = True
            torch.backends.quantized.engine = engine  # convert_fx packs the weights for this engine's kernels
            # the x86 recipe on every engine: 7-bit activations, which CPUs without VNNI need to not saturate
            prepared = prepare_fx(
                _Trunk(copy.deepcopy(vision)).eval(), get_default_qconfig_mapping("x86"), example_inputs=(samples[0],)
            )
            with torch.no_grad():
                for x in samples:
                    prepared(x)
            return convert_fx(prepared).eval()
        finally:
            torch.fx.config.do_not_emit_stack_traces = emit
            torch.backends.quantized.engine = before


def int8_calibration_samples(images: Sequence[Image.Image], stride: int) -> list[torch.Tensor]:
    """Activation-range samples for :func:`quantize_int8` from page images (the caller's fixed pages,
    rendered at the model's dpi, so every run quantizes the same way): their text areas as tensors."""
    pages = [image_to_tensor(img)[None] for img in images]
    frames = [ink_box(x, stride) for x in pages]  # the observers' cost grows with the pixels: text only
    return [
        pad_to_stride(x[:, :, y0:y1, x0:x1], stride).contiguous(memory_format=torch.channels_last)
        for x, (y0, x0, y1, x1) in zip(pages, frames)
    ]


INK_LEVEL = 0.6  # a pixel darker than this (0 black .. 1 white) is ink when framing a page
HALO_PX = (40, 120)  # (vertical, horizontal) margin kept around the ink: the net's receptive field radius


BAND_GAP_PX = 64  # paper rows between two bands of text below which they are computed as one


def ink_frames(batch: torch.Tensor, stride: int) -> list[tuple[int, int, int, int]]:
    """(y0, x0, y1, x1) pixel boxes of a (B, 1, H, W) batch that the vision net must see: its bands of
    text — runs of rows with ink, split where more than the receptive field plus ``BAND_GAP_PX`` of
    paper lies between two inked rows — each with its own ink columns, plus the receptive field;
    corners on multiples of ``stride`` so a crop's cells are the page's.

    Cells farther from any ink than the receptive field see only paper: they are never text, and
    computing them is wasted (page margins and the space between a letterhead, the body and a footer:
    28 % of the dev benchmark's page area, where a single frame around all the ink saved 19 %). Ink-free
    pages keep a single stride-sized box."""
    darkest = batch.amin(dim=(0, 1))  # (H, W); two small reductions are 5x cheaper than a boolean image
    H, W = darkest.shape
    rows = torch.nonzero(darkest.amin(dim=1) < INK_LEVEL).flatten().tolist()
    if not rows:
        return [(0, 0, min(H, stride), min(W, stride))]
    hy, hx = HALO_PX
    runs, start = [], rows[0]
    for prev, row in zip(rows, rows[1:]):
        if row - prev > 2 * hy + BAND_GAP_PX:
            runs.append((start, prev))
            start = row
    runs.append((start, rows[-1]))
    boxes = []
    for r0, r1 in runs:
        cols = torch.nonzero(darkest[r0 : r1 + 1].amin(dim=0) < INK_LEVEL).flatten()
        boxes.append(
            (
                max(0, r0 - hy) // stride * stride,
                max(0, int(cols[0]) - hx) // stride * stride,
                min(H, r1 + 1 + hy),
                min(W, int(cols[-1]) + 1 + hx),
            )
        )
    return boxes


def ink_box(batch: torch.Tensor, stride: int) -> tuple[int, int, int, int]:
    """The one box around all of :func:`ink_frames`: the ink plus the receptive field."""
    boxes = ink_frames(batch, stride)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
