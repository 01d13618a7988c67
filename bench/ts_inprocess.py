"""Run the shared dev benchmark (../shared/bench/run_eval.py) on tokensearch *in-process*.

The harness's own adapter (adapters/tokensearch_cli.py) starts one CLI process per query, so its
latencies include Python + model start-up; this adapter calls the engine directly (like the Tesseract
and RapidOCR adapters do), with the same hit conversion. Quality figures are identical either way.

    python3 bench/ts_inprocess.py --set clean_150 [--pages subset60] [--model mini] [--bench ../shared/bench]

Results land in <bench>/results/tokensearch_<set>[_<pages>]_inproc.json (run_eval's naming, tag
"inproc") and are copied to bench/results/ here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--model", default=os.environ.get("TOKENSEARCH_MODEL", "mini"))
    ap.add_argument("--tag", default="inproc")
    ap.add_argument(
        "--zoom",
        type=float,
        default=None,
        help="experiment: enlarge every page image by this factor before the model (e.g. 1.3333 "
        "reads 150 dpi pages as if at 200 dpi)",
    )
    ap.add_argument(
        "--zoom-x",
        type=float,
        default=None,
        help="experiment: stretch every page image by this factor in width only before the model",
    )
    ap.add_argument(
        "--shrink-to",
        type=float,
        default=None,
        help="experiment: the text size (x the 150 dpi reference) large images are shrunk to "
        "(indexer/scale.py SHRINK_TO, 4/3 shipped)",
    )
    ap.add_argument(
        "--shrink-above",
        type=float,
        default=None,
        help="experiment: the text size (x the reference) above which images are shrunk "
        "(indexer/scale.py SHRINK_ABOVE)",
    )
    ap.add_argument(
        "--grow-below",
        type=float,
        default=None,
        help="experiment: the text size (x the reference) under which images are enlarged (bicubic)",
    )
    ap.add_argument("--grow-to", type=float, default=4.0 / 3.0, help="experiment: ... to this size")
    ap.add_argument(
        "--read-grown",
        action="store_true",
        help="experiment: with --grow-below, the model reads the enlarged image but its features are pooled "
        "back (area-weighted) onto the grid of the image as it was, so the index keeps its cells",
    )
    a, rest = ap.parse_known_args()

    bench = a.bench.resolve()
    sys.path[:0] = [str(ROOT), str(bench)]
    from adapters import ADAPTERS  # the harness's registry
    from adapters.tokensearch_cli import TokenSearchCLI

    import tokensearch.indexer.scale as scale
    from tokensearch.engine import Engine
    from tokensearch.settings import Settings

    scale.SHRINK_TO = a.shrink_to or scale.SHRINK_TO
    scale.SHRINK_ABOVE = a.shrink_above or scale.SHRINK_ABOVE
    if a.grow_below and not a.read_grown:
        from grow_experiment import grow  # (bench/ is the script's folder: first on sys.path)

        grow(a.grow_below, a.grow_to)

    if a.zoom or a.zoom_x:
        from PIL import Image

        import tokensearch.indexer.sources as sources

        fx, fy = (a.zoom_x, 1.0) if a.zoom_x else (a.zoom, a.zoom)

        def zoomed(image, dpi):
            return image.resize((round(image.width * fx), round(image.height * fy)), Image.Resampling.BICUBIC)

        sources.normalise_scale = zoomed

    opened: list = []  # the adapters run_eval made (one a set)

    class TokenSearchInProcess(TokenSearchCLI):
        def __init__(self, workdir, threads=2):
            super().__init__(workdir, threads)
            import torch

            torch.set_num_threads(threads)
            self.engine = Engine(Settings(home=Path(self.home), model=a.model))
            if a.read_grown:
                from grow_experiment import read_grown

                read_grown(self.engine.encoder, a.grow_below, a.grow_to)
            opened.append(self)

        def index(self, folder):
            rep = self.engine.index(Path(folder))
            from adapters.common import dir_size

            self.engine.store.persist()
            return {
                "index_bytes": dir_size(self.home),
                "pages": rep.pages,
                "pages_text": rep.pages_text,
                "pages_vision": rep.pages_vision,
                "failed": rep.failed,
            }

        def search(self, query, k=10):
            self.stats["search_calls"] += 1
            res = self.engine.search(query, k=k)
            hits = [{"path": h.path, "page": h.page, "score": h.score, "boxes": h.boxes} for h in res.hits]
            return [c for c in (self._convert(h) for h in hits) if c is not None][:k]

    module = sys.modules[__name__]
    module.TokenSearchInProcess = TokenSearchInProcess
    ADAPTERS["tokensearch"] = (__name__, "TokenSearchInProcess")
    import run_eval

    sys.argv = [str(bench / "run_eval.py"), "--system", "tokensearch", "--tag", a.tag] + rest
    started = time.time()
    run_eval.main()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    from adapters.common import dir_size

    for f in (bench / "results").glob(f"tokensearch_*_{a.tag}.json"):
        if opened and f.stat().st_mtime >= started:  # (this run's file, not an earlier set's)
            # B/pg above is measured right after indexing, when a CLI index ends: the vector index is built
            # and saved by the first search. Here it has been: this is what the index holds in use.
            opened[-1].engine.store.vectors.current()
            opened[-1].engine.close()  # (a store saves its vector snapshot when it closes)
            res = json.loads(f.read_text())
            pages = max(1, res.get("n_pages") or res.get("pages") or 1)
            res["index_bytes_per_page_after_search"] = int(dir_size(opened[-1].home) / pages)
            f.write_text(json.dumps(res, indent=1))
            print(f"B/pg after the searches (vector snapshot included): {res['index_bytes_per_page_after_search']}")
        shutil.copy(f, out / f.name)


if __name__ == "__main__":
    main()
