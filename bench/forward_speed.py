"""Mini model forward (inference) and training-step time by precision, in one process.

    python3 bench/forward_speed.py [--model mini] [--repeats 9] [--json bench/results/forward_speed.json]

Inference: one letter page at 150 dpi (1275x1650 px, 48 lines of text), float32 (oneDNN's direct
convolutions) vs bfloat16 weights vs int8 (the `--dtype` setting) vs float32 with the 3x3 convs by
Winograd (`winograd`, the float path `auto` takes without int8 calibration pages), and int8 by the other
quantized engine than the one the CPU gets (``devices.int8_engine``: x86 or onednn), median of ``repeats``
timed passes after a warm-up, and how far the others' features are from float32's (cosine per text cell).
Training: forward + backward of the vision net on a batch of 8 crops of 224x384 px, float32 vs bf16
autocast (`tokensearch train --precision`). Runs on the CPU with 2 threads; whether bf16 is native here is
printed (without AVX512-BF16/AMX it is emulated).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokensearch.samples import calibration_pages  # noqa: E402
from tokensearch.tokenocr_model.devices import cpu_has_native_bf16, winograd_available  # noqa: E402
from tokensearch.tokenocr_model.mini import MiniModel, read_weights  # noqa: E402
from tokensearch.tokenocr_model.mini_encoder import load_mini  # noqa: E402
from tokensearch.tokenocr_model.mini_files import mini_paths  # noqa: E402


def letter_page() -> Image.Image:
    img = Image.new("L", (1275, 1650), 255)
    d = ImageDraw.Draw(img)
    try:
        font = ImageFont.truetype("DejaVuSerif.ttf", 20)
    except OSError:
        font = ImageFont.load_default()
    for i, y in enumerate(range(100, 1540, 30)):
        d.text(
            (100, y), f"Invoice {i:03d}: the quick brown fox jumps over the lazy dog, total 1,234.50", font=font, fill=0
        )
    return img


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN primitive creation)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mini", help="mini or mini:DIR")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(2)
    path = a.model.split(":", 1)[1] if ":" in a.model else None
    page = letter_page()
    res: dict = {"native_bf16": cpu_has_native_bf16(), "page_px": list(page.size)}

    encoders = {dt: load_mini(path, dtype=dt, int8_pages=calibration_pages) for dt in ("float32", "bfloat16", "int8")}
    encoders["float32"].winograd = False  # the reference: oneDNN's direct convolutions
    res["int8_engine"] = encoders["int8"].int8_engine  # what --dtype int8 runs on here; the other one beside it
    other = "x86" if res["int8_engine"] == "onednn" else "onednn"
    if other in torch.backends.quantized.supported_engines:
        encoders[f"int8_{other}"] = load_mini(path, dtype="int8", int8_pages=calibration_pages)
        encoders[f"int8_{other}"].int8_engine = other
    res["winograd_available"] = winograd_available()
    if res["winograd_available"]:  # float32, the 3x3 convs at 1/8 by Winograd (the float path)
        encoders["winograd"] = load_mini(path, dtype="float32")
    t = time.perf_counter()
    encoders["int8"].encode_pages([page])  # the first page also quantizes the net
    res["int8_first_page_s"] = round(time.perf_counter() - t, 3)
    grids = {}
    for dt, enc in encoders.items():
        res[f"infer_s_{dt}"] = round(timed(lambda enc=enc: enc.encode_pages([page]), a.repeats), 4)
        grids[dt] = enc.encode_pages([page])[0]
    text = grids["float32"].text > 0.5  # the cells an index keeps
    for dt, short in (
        ("bfloat16", "bf16"),
        ("int8", "int8"),
        (f"int8_{other}", f"int8_{other}"),
        ("winograd", "winograd"),
    ):
        if dt not in grids:
            continue
        cos = (grids["float32"].features * grids[dt].features).sum(-1)[text]
        res[f"{short}_cos_median"] = round(float(np.median(cos)), 5)
        res[f"{short}_cos_p1"] = round(float(np.percentile(cos, 1)), 5)
        res[f"{short}_cos_min"] = round(float(cos.min()), 5)
        res[f"{short}_text_cells_changed"] = round(float(((grids[dt].text > 0.5) != text).mean()), 5)
        res[f"infer_speedup_{short}"] = round(res["infer_s_float32"] / res[f"infer_s_{dt}"], 2)

    _, cfg, _ = read_weights(mini_paths(path)[0])
    model = MiniModel(cfg).train()
    x = torch.rand(8, 1, 224, 384)

    def step(amp: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            f, t = model.vision(x)
        (f.float().sum() + t.float().sum()).backward()

    res["train_step_s_float32"] = round(timed(lambda: step(False), a.repeats), 4)
    res["train_step_s_bf16"] = round(timed(lambda: step(True), a.repeats), 4)
    res["train_speedup_bf16"] = round(res["train_step_s_float32"] / res["train_step_s_bf16"], 2)
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
