"""Threshold calibration runs against the engine's chain score and writes it into the weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tokensearch.tokenocr_model.mini import TOKENIZER_FILE, WEIGHTS_DIR, WEIGHTS_FILE, load_mini
from tokensearch.training.calibrate import measure, page_score, write_threshold


def test_page_score_prefers_the_right_cells() -> None:
    enc = load_mini(None)
    query = "INV-2023-0042"
    q = enc.embed_query(query)
    assert len(q.tokens) >= 3
    feats = np.zeros((4, 20, enc.info.dim), np.float32)
    feats[..., 0] = 1.0  # blank page: every cell the same vector
    feats[2, 3:3 + len(q.tokens)] = q.vectors  # the query's tokens written left to right on row 2
    assert abs(page_score(enc, feats, query) - 1.0) < 1e-5
    assert page_score(enc, np.ascontiguousarray(feats[:, ::-1]), query) < 0.99  # right to left: no chain


def test_measure_and_write(tmp_path: Path) -> None:
    d = tmp_path / "w"
    d.mkdir()
    shutil.copy(WEIGHTS_DIR / WEIGHTS_FILE, d / WEIGHTS_FILE)
    shutil.copy(WEIGHTS_DIR / TOKENIZER_FILE, d / TOKENIZER_FILE)
    res = measure(load_mini(d), n_pages=1, words_per_page=3)
    assert res["n_pos"] == 3 and res["n_neg"] == 3 and -1.0 <= res["threshold"] <= 1.0 and 0 <= res["auc"] <= 1
    write_threshold(d / WEIGHTS_FILE, {**res, "threshold": 0.4321})
    assert load_mini(d).info.extra["threshold"] == 0.4321
