"""Calibrate the mini model's default score threshold on held-out synthetic pages.

Score of a word query on a page (what ``encoder.info.extra["threshold"]`` refers to): the mean over
the query's BPE tokens of the cosine between each token's vector and the cell it is matched to, the
cells forming a chain in reading order on one text line (the search engine's localisation,
:func:`tokensearch.search.localize.chain_scores`, reused here so both mean the same thing); the page's
score is its best chain. All cells of the page take part (the engine may keep only text cells, which
can only lower a negative's score).

Positives are words printed on the page; negatives are dictionary words and generated entities that
do not occur on it. The threshold maximises TPR - FPR (Youden's J) over pages rendered at 150 DPI,
half clean and half degraded by the training augmentations; ``at_fpr`` lists stricter thresholds
(page-level false-positive rate <= 1/5/10/20 %) with the share of true words they keep.

``python -m tokensearch.training.calibrate [--weights DIR] [--pages N] [--write]``: ``--write`` stores
the threshold and the measurement in the weights file's metadata (``extra``).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import numpy as np

from ..tokenocr_model.mini import WEIGHTS_DIR, WEIGHTS_FILE, MiniEncoder, MiniModel, load_mini, read_weights, save_weights
from .augment import augment
from .synth import DocumentSynth
from .textgen import TextSource

WORD_STRIP = re.compile(r"^[\(\[\"']+|[\)\]\"'.,;:!?]+$")


def page_score(enc: MiniEncoder, feats: np.ndarray, query: str) -> float:
    """Best chain score of ``query`` on a page (feats: (H, W, D)): mean cosine of its tokens' chain cells."""
    from ..search.localize import CELLS_PER_CHAR, chain_scores

    q = enc.embed_query(query)
    T = len(q.tokens)
    if not T:
        return float("nan")
    maps = np.einsum("hwd,td->thw", feats, q.vectors)  # (T, H, W)
    lens = [max(1, t.end - t.start) for t in q.tokens]
    gaps = [max(2, int(np.ceil(CELLS_PER_CHAR * (lens[j] + lens[j + 1] + 1)))) for j in range(T - 1)]
    chains = chain_scores(maps, gaps)
    whole = chains[-1] if isinstance(chains, list) else chains  # newer engines return every partial chain
    return float(whole.max() / T)


def measure(enc: MiniEncoder, n_pages: int = 12, words_per_page: int = 25, seed: int = 4242) -> dict:
    rng = random.Random(seed)
    synth = DocumentSynth(enc.tokenizer, seed=seed)
    src = TextSource(random.Random(seed + 1))
    pos, neg = [], []
    for i in range(n_pages):
        page = synth.page(dpi=150)
        img = page.image
        if i % 2 == 1:
            img, _ = augment(img, page.mask, rng, strength=0.7)
        from PIL import Image

        grid = enc.encode_pages([Image.fromarray(img)])[0]
        page_text = " ".join(t.text for t in page.tokens)
        lines: dict[int, list[str]] = {}
        for t in page.tokens:
            lines.setdefault(t.line, []).append(t.text)
        words = sorted({WORD_STRIP.sub("", w) for w in _page_words(page)} - {""})
        words = [w for w in words if len(w) >= 3]
        rng.shuffle(words)
        for w in words[:words_per_page]:
            pos.append(page_score(enc, grid.features, w))
        low = page_text.lower()
        n = 0
        while n < words_per_page:
            w = src.word() if rng.random() < 0.6 else src.entity().split()[0]
            w = WORD_STRIP.sub("", w)
            if len(w) < 3 or w.lower() in low:
                continue
            neg.append(page_score(enc, grid.features, w))
            n += 1
    pos_a, neg_a = np.array(pos), np.array(neg)
    cands = np.unique(np.concatenate([pos_a, neg_a]))
    tpr = np.array([(pos_a >= c).mean() for c in cands])
    fpr = np.array([(neg_a >= c).mean() for c in cands])
    j = int(np.argmax(tpr - fpr))
    thr = float(cands[j])
    at_fpr = {}
    for target in (0.01, 0.05, 0.1, 0.2):  # lowest threshold keeping the page-level FPR <= target
        ok = np.nonzero(fpr <= target)[0]
        k = int(ok[0]) if len(ok) else len(cands) - 1
        at_fpr[str(target)] = {"threshold": round(float(cands[k]), 4), "tpr": round(float(tpr[k]), 4),
                               "fpr": round(float(fpr[k]), 4)}
    auc = float((pos_a[:, None] > neg_a[None, :]).mean() + 0.5 * (pos_a[:, None] == neg_a[None, :]).mean())
    return {"threshold": round(thr, 4), "tpr": round(float(tpr[j]), 4), "fpr": round(float(fpr[j]), 4),
            "auc": round(auc, 4), "pos_mean": round(float(pos_a.mean()), 4), "neg_mean": round(float(neg_a.mean()), 4),
            "n_pos": len(pos), "n_neg": len(neg), "pages": n_pages, "at_fpr": at_fpr,
            "score": "best chain on the page of the mean cosine of the query tokens at their chained cells"}


def _page_words(page) -> list[str]:
    """Whitespace words of the page, rebuilt from its tokens (tokens of one word touch each other)."""
    words, cur, last = [], "", None
    for t in page.tokens:
        glued = last is not None and t.line == last.line and t.box[0] - last.box[2] < 0.5 and not t.piece.startswith("Ġ")
        if glued:
            cur += t.text
        else:
            if cur:
                words.append(cur)
            cur = t.text
        last = t
    if cur:
        words.append(cur)
    return words


def write_threshold(weights: Path, result: dict) -> None:
    state, cfg, extra = read_weights(weights)
    model = MiniModel(cfg)
    model.load_state_dict(state)
    extra = {**extra, "threshold": result["threshold"], "calibration": result}
    save_weights(model, weights, extra=extra)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="weights dir (default: the shipped weights)")
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--write", action="store_true", help="store the threshold in the weights' metadata")
    a = ap.parse_args(argv)
    enc = load_mini(a.weights)
    res = measure(enc, n_pages=a.pages)
    print(json.dumps(res))
    if a.write:
        d = Path(a.weights) if a.weights else WEIGHTS_DIR
        write_threshold(d / WEIGHTS_FILE if d.is_dir() else d, res)
        print(f"threshold {res['threshold']} written to {d}")


if __name__ == "__main__":
    main()
