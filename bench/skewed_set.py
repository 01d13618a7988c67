"""A dev-benchmark set of crooked scans: the clean 150 dpi pages, each turned by 2-5 degrees either way.

Real scans are laid a little off and phone photos are never square; the model was trained on text
turned by at most 2 degrees. This writes ``skewed_150`` next to the benchmark's other sets (a writable
copy of ../shared/bench: ``cp -r ../shared/bench B``), with each page's angle in ``transforms.json`` so
the harness turns the true boxes the same way, as it does for ``degraded_150``'s +/-1 degree:

    python3 bench/skewed_set.py --bench B
    TOKENSEARCH_IMAGE_SCALE=off python3 bench/ts_inprocess.py --bench B --set skewed_150 --tag off
    python3 bench/ts_inprocess.py --bench B --set skewed_150 --tag straightened

(``--image-scale off`` feeds the pages as they are; the default straightens them, ``indexer/skew.py``.)
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, required=True, help="a writable copy of ../shared/bench, data built")
    ap.add_argument("--source", default="clean_150")
    ap.add_argument("--name", default="skewed_150")
    ap.add_argument("--min-deg", type=float, default=2.0)
    ap.add_argument("--max-deg", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=5)
    a = ap.parse_args()
    data = a.bench / "data"
    src, dst = data / "scans" / a.source / "png", data / "scans" / a.name / "png"
    dst.mkdir(parents=True, exist_ok=True)
    tf_path = data / "transforms.json"
    transforms = json.loads(tf_path.read_text())
    rng = random.Random(a.seed)
    angles = {}
    for page in sorted(src.glob("*.png")):
        doc, number = page.stem.rsplit("__p", 1)
        angle = rng.choice((-1, 1)) * rng.uniform(a.min_deg, a.max_deg)
        with Image.open(page) as im:  # as build_data.py turns the degraded scans: same canvas, white fill
            im.convert("L").rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=255).save(dst / page.name)
        angles[f"{doc}/{int(number)}"] = {"angle": round(angle, 4), "binarized": False}
    transforms[a.name] = angles
    tf_path.write_text(json.dumps(transforms))
    print(f"{len(angles)} pages turned by {a.min_deg}-{a.max_deg} degrees -> {dst}")


if __name__ == "__main__":
    main()
