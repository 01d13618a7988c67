"""Hard negatives: the strings a token's cells must read worse than the token (its pieces, its other case,
one letter or digit changed), and the training loss that ranks the token above them."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from tokensearch.tokenocr_model.mini import MiniConfig, MiniModel
from tokensearch.training.cli_args import _overrides, add_train_arguments
from tokensearch.training.lookalikes import hard_negatives
from tokensearch.training.train import hard_loss


def _all(text: str, draws: int = 40) -> set[str]:
    rng = random.Random(0)
    return {h for _ in range(draws) for h in hard_negatives(text, rng, 5)}


def test_hard_negatives_are_pieces_other_cases_and_one_character_changes() -> None:
    got = _all(" Signature")
    assert " Signature" not in got and all(h.strip() for h in got)
    assert any(h.startswith(" Sign") and len(h) < len(" Signature") for h in got)  # a prefix keeps the space
    assert any(" Signature".endswith(h) and not h.startswith(" ") for h in got)  # a suffix has none
    assert " SIGNATURE" in got or " signature" in got
    changed = [h for h in got if len(h) == len(" Signature") and h.lower() != " signature"]
    assert changed and all(sum(a != b for a, b in zip(h, " Signature")) == 1 for h in changed)


def test_hard_negatives_of_upper_case_words_and_numbers_stay_in_their_kind() -> None:
    words = [h for h in _all(" BATTERY") if len(h) == len(" BATTERY") and h.lower() != " battery"]
    assert words and all(h.isupper() for h in words)  # " BATTEsY" would be a different kind of miss
    dates = [h for h in _all("27/03/2018") if len(h) == len("27/03/2018") and h[2] == "/" and h[5] == "/"]
    assert dates and all(sum(a != b for a, b in zip(h, "27/03/2018")) == 1 for h in dates)


def test_hard_negatives_are_distinct_and_at_most_n() -> None:
    rng = random.Random(1)
    for text in [" the", "a", "ing", "RM4.43", " SALE"]:
        out = hard_negatives(text, rng, 3)
        assert len(out) <= 3 and len(set(out)) == len(out) and text not in out
    assert hard_negatives("a", rng, 3) == ["A"]


def test_hard_loss_is_low_where_cells_read_their_token_and_high_where_they_read_a_piece() -> None:
    torch.manual_seed(0)
    model = MiniModel(MiniConfig())
    texts = [" Signature", " Total"]
    with torch.no_grad():
        vecs = model.composer(texts)
        pieces = model.composer([" Sign", " Tot"])
    u = torch.tensor([0, 1])

    def loss(x: torch.Tensor) -> float:
        x = F.normalize(x, dim=-1)
        with torch.no_grad():
            return float(hard_loss(model, texts, vecs, x, u, x, u, 4, seed=3))

    assert loss(vecs) < loss(pieces)


def test_hard_negatives_reach_the_training_config(tmp_path: Path) -> None:
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    assert _overrides(p.parse_args(["--out", str(tmp_path), "--hard-negatives", "2"]))["hard_negatives"] == 2
    assert "hard_negatives" not in _overrides(p.parse_args(["--out", str(tmp_path)]))  # default: the shipped recipe
