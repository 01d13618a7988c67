"""Train the mini model's BPE tokenizer from offline text (``python -m tokensearch.training.tokenizer``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..tokenocr_model.mini_tokenizer import MiniTokenizer, build_bpe
from .textgen import tokenizer_corpus


def train_tokenizer(out: str | Path, vocab_size: int = 6000, seed: int = 0) -> MiniTokenizer:
    """Train and save ``out/tokenizer.json``; deterministic for a given machine's text files and seed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    lines = tokenizer_corpus(seed=seed)
    tok = build_bpe(vocab_size, lines)
    tok.save(str(out / "tokenizer.json"))
    print(
        f"tokenizer: {tok.get_vocab_size()} tokens from {len(lines)} lines in {time.time() - t0:.1f}s "
        f"-> {out / 'tokenizer.json'}"
    )
    return MiniTokenizer(tok)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab-size", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    train_tokenizer(a.out, a.vocab_size, a.seed)


if __name__ == "__main__":
    main()
