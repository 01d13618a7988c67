"""Variants of the vocabulary check (search/verify.py) replayed on the dev benchmark, for comparison.

Runs ``bench/threshold_sweep.py`` (same arguments) with the searcher's re-scoring swapped for a variant:

- ``min``: the worst token margin of an occurrence instead of the mean;
- ``pooled``: the occurrence's score becomes the mean cosine of each token's *pooled* feature with the
  token vector (instead of the chain's best cells), plus the weighted mean margin;
- ``mix``: the mean of the chain's score and the pooled one, plus the weighted mean margin.

    python3 bench/verify_variants.py --variant pooled --set clean_150 --pages all --model mini:DIR \\
        --home H --floor 0.6 --verify-weights 4
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _variant_rescore(variant: str):
    from tokensearch.search.verify import margins, pooled_tokens

    def rescore(occs, maps, rows, feats, own, own_ids, competitors, weight):
        if not occs:
            return occs
        T = len(own_ids)
        pooled = np.concatenate([pooled_tokens(o, maps, rows, feats) for o in occs])
        owns = np.tile(own, (len(occs), 1))
        m = np.minimum(margins(pooled, owns, np.tile(own_ids, len(occs)), competitors), 0.0).reshape(len(occs), T)
        m = m.min(axis=1) if variant == "min" else m.mean(axis=1)
        mine = np.einsum("nd,nd->n", pooled, owns)
        chain = np.asarray([o.score for o in occs])
        pooled_score = mine.reshape(len(occs), T).mean(axis=1)
        base = {"pooled": pooled_score, "mix": (chain + pooled_score) / 2}.get(variant, chain)
        return [replace(o, score=float(b + weight * mi)) for o, b, mi in zip(occs, base, m)]

    return rescore


def main() -> None:
    args = sys.argv[1:]
    if "--variant" not in args:
        sys.exit("usage: verify_variants.py --variant {min,pooled,mix} THRESHOLD_SWEEP_ARGS...")
    i = args.index("--variant")
    variant = args[i + 1]
    if variant not in ("min", "pooled", "mix"):
        sys.exit(f"unknown variant {variant!r}")
    sys.argv = [sys.argv[0], *args[:i], *args[i + 2 :]]
    import tokensearch.search.searcher as searcher

    variant_rescore = _variant_rescore(variant)
    searcher.rescore_all = lambda groups, rows, feats, competitors, weight: [
        variant_rescore(occs, maps, rows, feats, own, ids, competitors, weight) for occs, maps, own, ids in groups
    ]
    import threshold_sweep

    threshold_sweep.main()


if __name__ == "__main__":
    main()
