"""The element-wise mean of mini weights of one architecture (a "model soup"), as a weights dir to calibrate and bench.

    python3 bench/average_weights.py OUT DIR DIR [DIR ...]

Each DIR holds ``mini.safetensors`` and ``tokenizer.json`` (a training run's OUT, or the shipped weights); OUT gets
their mean and the first DIR's tokenizer. The mean has no calibrated threshold: run stage 4's calibration on OUT
(``python3 -m tokensearch.training.calibrate --weights OUT ... --write``) before benching it.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from tokensearch.tokenocr_model.mini import MiniModel, load_state, read_weights, save_weights
from tokensearch.tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_FILE


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("dirs", type=Path, nargs="+")
    a = ap.parse_args()

    runs = [read_weights(d / WEIGHTS_FILE) for d in a.dirs]
    cfg = runs[0][1]
    if any(c != cfg for _, c, _ in runs):
        raise SystemExit("the weights differ in architecture; only one architecture can be averaged")
    mean = {k: sum(state[k].float() for state, _, _ in runs) / len(runs) for k in runs[0][0]}
    model = MiniModel(cfg)
    load_state(model, mean, " + ".join(map(str, a.dirs)))  # loud on a missing or unexpected key
    a.out.mkdir(parents=True, exist_ok=True)
    save_weights(model, a.out / WEIGHTS_FILE, extra={"averaged": [str(d) for d in a.dirs]})
    shutil.copy(a.dirs[0] / TOKENIZER_FILE, a.out / TOKENIZER_FILE)
    print(f"wrote the mean of {len(runs)} weights to {a.out}")


if __name__ == "__main__":
    main()
