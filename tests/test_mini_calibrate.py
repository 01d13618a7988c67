"""Threshold calibration searches a real collection through the engine and writes the result into the weights."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from tokensearch.tokenocr_model.mini_encoder import load_mini
from tokensearch.tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR, WEIGHTS_FILE
from tokensearch.tokenocr_model.mini_tokenizer import MiniTokenizer
from tokensearch.training.calibrate import (
    Collection,
    balanced_threshold,
    calibrate_collection,
    make_phrases,
    make_queries,
    synthetic_collection,
    threshold_for,
    write_threshold,
)
from tokensearch.training.lookalikes import LOOKALIKE, near_miss

# integration: calibration searching a collection through the engine
pytestmark = pytest.mark.integration


def test_threshold_lets_through_at_most_the_target_share_of_negatives() -> None:
    neg = np.array([0.9, 0.8, 0.7, 0.6, float("-inf")] * 4)  # 20 negatives
    t = threshold_for(neg, 0.05)  # one of 20 may pass, but four tie at 0.9: none does
    assert (neg >= t).mean() <= 0.05 and t > 0.9
    t = threshold_for(neg, 0.25)
    assert (neg >= t).mean() <= 0.25 and t <= 0.9 + 1e-6


def test_balanced_threshold_trades_right_pages_against_false_hits() -> None:
    pos = np.array([0.9, 0.8, 0.7, 0.6])
    ok = np.array([True, True, True, False])  # the 0.6 answer is on a wrong page: no gain below 0.7
    neg = np.array([0.65, 0.5, float("-inf"), float("-inf")])
    assert balanced_threshold(pos, ok, neg, floor=0.3) == 0.7  # all right answers, no false hit


def _one_char_edit(miss: str, word: str) -> str | None:
    """How ``miss`` came from ``word`` by changing one interior character, or None if it did not."""
    for i in range(1, len(word) - 1):
        if miss == word[:i] + LOOKALIKE.get(word[i], "?") + word[i + 1 :]:
            return "look-alike"
        if len(miss) == len(word) and miss[:i] + miss[i + 1 :] == word[:i] + word[i + 1 :] and miss[i] != word[i]:
            return "typo"
    return None


def test_near_misses_are_one_interior_letter_away() -> None:
    rng = random.Random(0)
    kinds = {_one_char_edit(near_miss(w, rng), w) for w in ["differences", "children", "variance"] * 10}
    assert kinds == {"look-alike", "typo"}  # both an OCR-like confusion and a user's typo, nothing else
    assert near_miss("ab", rng) is None


def test_negative_queries_appear_nowhere_not_even_inside_a_printed_word() -> None:
    col = Collection(words=[["Invoice", "differences", "total", "already"], ["children", "Payment", "2023-01-05"]])
    pos, neg = make_queries(col, n_pos=10, n_neg=9, seed=1)
    assert {w for w, _ in pos} <= {"invoice", "differences", "total", "already", "children", "payment", "2023-01-05"}
    assert dict(pos)["children"] == {1}
    text = col.text
    assert len(neg) == 9 and all(n.lower() not in text and n.lower() + "s" not in text for n, _ in neg)
    assert sum(kind == "near" for _, kind in neg) == 3  # a third are one letter off a printed word
    assert all(any(_one_char_edit(n, w.lower()) for w in sum(col.words, [])) for n, kind in neg if kind == "near")


def test_calibrate_through_the_engine_and_write(tmp_path: Path) -> None:
    d = tmp_path / "w"
    d.mkdir()
    shutil.copy(WEIGHTS_DIR / WEIGHTS_FILE, d / WEIGHTS_FILE)
    shutil.copy(WEIGHTS_DIR / TOKENIZER_FILE, d / TOKENIZER_FILE)
    col = synthetic_collection(MiniTokenizer.from_file(d / TOKENIZER_FILE), n_pages=2, seed=3)
    res = calibrate_collection(f"mini:{d}", col, n_pos=6, n_neg=6, target_fp=0.2, rule="strict", home=tmp_path / "home")
    assert res["n_pos"] == 6 and res["n_neg"] == 6 and res["pages"] == 2
    assert res["threshold"] == res["strict_threshold"] >= 0.3 and res["fp"] <= 0.2 + 1e-9
    assert 0 <= res["r1"] <= res["r1_no_threshold"] <= 1 and res["balanced_threshold"] >= 0.3
    assert 0.3 <= res["phrase_threshold"] <= res["threshold"] and res["n_phrase_pos"] > 0
    by = {row["target_fp"]: row for row in res["strict_by_target"]}
    assert by[0.2]["threshold"] == res["strict_threshold"] and by[0.2]["phrase_threshold"] == res["phrase_threshold"]
    assert by[0.02]["threshold"] >= by[0.03]["threshold"] >= by[0.2]["threshold"]  # stricter targets, higher bars
    assert all(row["fp"] <= row["target_fp"] + 1e-9 for row in by.values())
    write_threshold(d / WEIGHTS_FILE, {**res, "threshold": 0.4321, "phrase_threshold": 0.4123})
    assert load_mini(d).info.extra["threshold"] == 0.4321
    assert load_mini(d).info.extra["phrase_threshold"] == 0.4123


def test_negative_phrases_are_written_nowhere_and_positive_ones_stand_together() -> None:
    col = Collection(
        images=[], words=[["Harbour", "crane", "lifts", "containers"], ["committee", "meeting", "minutes"]]
    )
    pos, neg = make_phrases(col, n_pos=10, n_neg=4, seed=1)
    assert pos and all(q.startswith('"') and q.endswith('"') for q, _ in pos + neg)
    printed = {f"{a} {b}".lower(): i for i, ws in enumerate(col.words) for a, b in zip(ws, ws[1:])}
    assert all(printed[q.strip('"')] in pages for q, pages in pos)
    text = col.text
    assert len(neg) == 4 and all(w not in text for q, _ in neg for w in q.strip('"').split())
    assert any(kind == "near" for _, kind in neg)
