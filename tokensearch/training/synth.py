"""Synthetic documents for the mini model (TokenIT-style): PyMuPDF lays out a random page, its text layer
gives exact character boxes, and every BPE token gets a box, an ordinal and a value in a mask image.

Layouts: headings, 1-3 column paragraphs, bullet/numbered lists, tables with rules, forms (labels,
boxed fields, check boxes), captions, header/footer, page numbers, key-value blocks, shaded and
inverted (white-on-dark) bands. Text: prose found on the machine, dictionary words, numbers, dates,
amounts, codes, names, e-mails (see :mod:`.textgen`). Fonts: PDF Base14 (Helvetica, Times, Courier
with bold/italic) and the TrueType families installed (DejaVu, Liberation, FreeFont, URW) at 7-24 pt,
in colours and gray levels.

``python -m tokensearch.training.synth --out DIR -n 5`` writes samples (PNG page, mask PNG, JSON) to look at.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import cast

import numpy as np
import pymupdf

from ..tokenocr_model.mini_tokenizer import MiniTokenizer
from .pagetokens import PageToken, page_tokens, render_gray, token_mask
from .textgen import TextSource

BASE14 = ("helv", "heit", "hebo", "hebi", "tiro", "tiit", "tibo", "tibi", "cour", "coit", "cobo", "cobi")
FONT_DIRS = ("/usr/share/fonts/truetype", "/usr/share/fonts/opentype", "/usr/share/texmf/fonts/opentype/public/lm")
PAGE_SIZES = ((612, 792), (595, 842), (612, 1008), (842, 595), (500, 700))


@lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """Installed TrueType/OpenType text fonts (symbol and math fonts left out), as absolute paths; the
    folders are ``$TOKENSEARCH_FONT_DIRS`` (separated by ``os.pathsep``: a carried data pack's fonts)
    when it is set, else :data:`FONT_DIRS`."""
    env = os.environ.get("TOKENSEARCH_FONT_DIRS")
    files = []
    for d in env.split(os.pathsep) if env else FONT_DIRS:
        p = Path(d).absolute()  # PyMuPDF takes a font file for a name that starts with '/'
        if p.is_dir():
            files += [str(f) for f in sorted(p.rglob("*")) if f.suffix.lower() in (".ttf", ".otf")]
    skip = ("math", "symbol", "dingbat", "d050000l", "z003")  # symbol fonts
    return tuple(f for f in files if not any(s in f.lower() for s in skip) and _writes_latin(f))


def _writes_latin(path: str) -> bool:
    """Does the font draw every ASCII letter and digit? A machine's font folders also hold CJK-, Arabic-
    or symbol-only faces; a page set in one would show missing-glyph boxes where its labels say letters."""
    try:
        font = _font(path)  # the cached face the renderer uses later
    except Exception:  # an unreadable or unsupported file is no font to train on
        return False
    return all(font.has_glyph(ord(c)) for c in string.ascii_letters + string.digits)


@lru_cache(maxsize=256)
def _font(name: str) -> pymupdf.Font:
    return pymupdf.Font(fontfile=name) if name.startswith("/") else pymupdf.Font(name)


_ADVANCES: dict[str, dict[str, float]] = {}


def text_width(font: str, text: str, size: float) -> float:
    """Advance width of ``text`` in points (per-character advances cached; PyMuPDF's own is slow)."""
    adv = _ADVANCES.setdefault(font, {})
    total = 0.0
    for ch in text:
        a = adv.get(ch)
        if a is None:
            a = adv[ch] = _font(font).text_length(ch, fontsize=1.0)
        total += a
    return total * size


RGB = tuple[float, float, float]  # PyMuPDF colour, components 0..1


@dataclass
class Style:
    font: str  # Base14 name or font file path
    size: float
    color: RGB

    def width(self, text: str) -> float:
        return text_width(self.font, text, self.size)


@dataclass
class SynthPage:
    image: np.ndarray  # (H, W) uint8 grayscale
    mask: np.ndarray  # (H, W) int32: token ordinal + 1, 0 = background
    tokens: list[PageToken]  # boxes in PDF points
    scale: float  # pixels per point
    dpi: float

    def to_json(self) -> dict:
        s = self.scale
        return {
            "dpi": self.dpi,
            "width": int(self.image.shape[1]),
            "height": int(self.image.shape[0]),
            "tokens": [
                {
                    "ordinal": i,
                    "id": t.id,
                    "piece": t.piece,
                    "text": t.text,
                    "line": t.line,
                    "box": [round(v * s, 1) for v in t.box],
                }
                for i, t in enumerate(self.tokens)
            ],
        }


class PageWriter:
    """Collects text per colour in PyMuPDF TextWriters (one content-stream write per colour at the end:
    much faster than one ``insert_text`` per line)."""

    def __init__(self, page: pymupdf.Page, rng: random.Random):
        self.page = page
        self.rng = rng
        self._writers: dict[tuple[float, float, float], pymupdf.TextWriter] = {}

    def text(self, x: float, y: float, s: str, st: Style) -> float:
        """Write ``s`` with its baseline at y; returns the x after it."""
        color = cast(RGB, tuple(round(c, 3) for c in st.color))
        tw = self._writers.get(color)
        if tw is None:
            tw = self._writers[color] = pymupdf.TextWriter(self.page.rect)
        tw.append((x, y), s, font=_font(st.font), fontsize=st.size)
        return x + st.width(s)

    def flush(self) -> None:
        for color, tw in self._writers.items():
            tw.write_text(self.page, color=color)
        self._writers.clear()


class DocumentSynth:
    """Random document pages; one instance per worker, seeded."""

    def __init__(self, tokenizer: MiniTokenizer, seed: int = 0):
        self.tok = tokenizer
        self.rng = random.Random(seed)
        self.src = TextSource(self.rng)
        self.fonts = BASE14 + font_files()
        self.palette: list[str] = list(BASE14)

    def new_palette(self) -> None:
        """A document uses a few font families: 1-3 installed fonts and/or 1-2 Base14 ones."""
        r = self.rng
        files = font_files()
        pal = [r.choice(files) for _ in range(r.randint(1, 3))] if files and r.random() < 0.75 else []
        pal += [r.choice(BASE14) for _ in range(r.randint(0 if pal else 1, 2))]
        self.palette = pal

    # --- styles -------------------------------------------------------------------------------------
    def style(self, lo: float = 7, hi: float = 13, dark: bool = True) -> Style:
        r = self.rng
        font = r.choice(self.palette)
        if dark:
            g = r.uniform(0, 0.35)
            color = (g, g, g) if r.random() < 0.75 else cast(RGB, tuple(r.uniform(0, 0.6) for _ in range(3)))
        else:
            g = r.uniform(0.85, 1.0)
            color = (g, g, g)
        return Style(font, round(r.uniform(lo, hi) * 2) / 2, color)

    # --- blocks: each writes at (x, y) within width w and returns the new y -------------------------
    def paragraph(self, pw: PageWriter, x: float, y: float, w: float, y_max: float, st: Style, n_lines: int) -> float:
        lead = st.size * self.rng.uniform(1.15, 1.6)
        words = " ".join(self.src.sentence() for _ in range(n_lines)).split()
        line: list[str] = []
        lines_done = 0
        for word in words:
            cand = " ".join(line + [word])
            if line and st.width(cand) > w:
                if y + lead > y_max:
                    return y
                y += lead
                pw.text(x, y, " ".join(line), st)
                lines_done += 1
                line = [word]
                if lines_done >= n_lines:
                    return y + lead * 0.5
            else:
                line.append(word)
        if line and y + lead <= y_max:
            y += lead
            pw.text(x, y, " ".join(line), st)
        return y + lead * 0.5

    def heading(self, pw: PageWriter, x: float, y: float, w: float, y_max: float) -> float:
        r = self.rng
        st = self.style(13, 24)
        st.font = r.choice(("hebo", "tibo", "cobo", "helv")) if r.random() < 0.25 else st.font
        text = (f"{r.randint(1, 12)}. " if r.random() < 0.3 else "") + self.src.short()
        if r.random() < 0.3:
            text = text.upper()
        while st.width(text) > w and " " in text:
            text = text.rsplit(" ", 1)[0]
        if y + st.size * 1.5 > y_max:
            return y
        y += st.size * 1.3
        pw.text(x, y, text, st)
        return y + st.size * 0.6

    def bullet_list(self, pw: PageWriter, x: float, y: float, w: float, y_max: float) -> float:
        r = self.rng
        st = self.style()
        kind = r.choice(["-", "*", "num", "alpha"])
        for i in range(r.randint(2, 6)):
            marker = {
                "-": "-",
                "*": "\u2022" if st.font.startswith("/") else "-",
                "num": f"{i + 1}.",
                "alpha": f"{'abcdefgh'[i]})",
            }[kind]
            if y + st.size * 1.4 > y_max:
                break
            y += st.size * 1.4
            pw.text(x, y, marker, st)
            text = self.src.sentence(3, 10)
            while st.width(text) > w - 2 * st.size and " " in text:
                text = text.rsplit(" ", 1)[0]
            pw.text(x + 1.8 * st.size, y, text, st)
        return y + st.size * 0.6

    def table(self, pw: PageWriter, x: float, y: float, w: float, y_max: float) -> float:
        r = self.rng
        st = self.style(7, 11)
        head = Style(r.choice(("hebo", "tibo", "cobo")) if r.random() < 0.3 else self.style().font, st.size, st.color)
        ncol = r.randint(2, 5)
        cw = w / ncol
        row_h = st.size * r.uniform(1.5, 2.1)
        rules = r.random() < 0.7
        page = pw.page
        n_rows = r.randint(3, 12)
        top = y
        for ri in range(n_rows):
            if y + row_h > y_max:
                break
            if ri > 0 and r.random() < 0.2:
                page.draw_rect(pymupdf.Rect(x, y, x + w, y + row_h), color=None, fill=(0.9, 0.9, 0.9))
            for ci in range(ncol):
                cell = self.src.short() if ri > 0 else self.src.word().capitalize()
                s = head if ri == 0 else st
                while s.width(cell) > cw - 4 and len(cell) > 1:
                    cell = cell[:-1]
                right = ri > 0 and any(ch.isdigit() for ch in cell) and r.random() < 0.6
                cx = x + ci * cw + (cw - 3 - s.width(cell) if right else 3)
                pw.text(cx, y + row_h * 0.72, cell, s)
            y += row_h
            if rules:
                page.draw_line((x, y), (x + w, y), color=(0.3, 0.3, 0.3), width=r.uniform(0.3, 1.0))
        if rules and r.random() < 0.5:
            for ci in range(ncol + 1):
                page.draw_line((x + ci * cw, top), (x + ci * cw, y), color=(0.3, 0.3, 0.3), width=0.5)
        return y + st.size

    def form(self, pw: PageWriter, x: float, y: float, w: float, y_max: float) -> float:
        r = self.rng
        st = self.style(8, 12)
        val = self.style(8, 12)
        page = pw.page
        for _ in range(r.randint(2, 7)):
            h = st.size * 2.0
            if y + h > y_max:
                break
            label = self.src.word().capitalize() + r.choice([":", "", " No.", " /"])
            lx = pw.text(x, y + h * 0.7, label, st)
            bx = lx + 6
            kind = r.random()
            if kind < 0.25:  # check boxes
                for _ in range(r.randint(1, 3)):
                    s = st.size * 0.9
                    if bx + s + 60 > x + w:
                        break
                    rect = pymupdf.Rect(bx, y + h * 0.7 - s, bx + s, y + h * 0.7)
                    page.draw_rect(rect, color=(0, 0, 0), width=0.7)
                    if r.random() < 0.5:
                        page.draw_line(rect.tl, rect.br, width=1)
                        page.draw_line(rect.bl, rect.tr, width=1)
                    bx = pw.text(bx + s + 3, y + h * 0.7, self.src.word(), st) + 10
            else:
                bw = min(x + w - bx, r.uniform(80, 260))
                if bw < 30:
                    y += h
                    continue
                if r.random() < 0.6:
                    page.draw_rect(
                        pymupdf.Rect(bx, y + h * 0.1, bx + bw, y + h * 0.95), color=(0.2, 0.2, 0.2), width=0.6
                    )
                else:
                    page.draw_line((bx, y + h * 0.8), (bx + bw, y + h * 0.8), color=(0.2, 0.2, 0.2), width=0.6)
                value = self.src.entity() if r.random() < 0.7 else self.src.short()
                while val.width(value) > bw - 6 and len(value) > 1:
                    value = value[:-1]
                pw.text(bx + 3, y + h * 0.7, value, val)
            y += h
        return y + st.size * 0.5

    def band(self, pw: PageWriter, x: float, y: float, w: float, y_max: float) -> float:
        """A shaded or inverted (light text on dark) band with a title or key-value text."""
        r = self.rng
        inverted = r.random() < 0.6
        st = self.style(9, 16, dark=not inverted)
        h = st.size * 2.0
        if y + h > y_max:
            return y
        g = r.uniform(0.0, 0.45) if inverted else r.uniform(0.75, 0.93)
        pw.page.draw_rect(
            pymupdf.Rect(x, y, x + w, y + h),
            color=None,
            fill=(g, g, g) if r.random() < 0.6 else tuple(r.uniform(g * 0.5, min(1, g * 1.5 + 0.1)) for _ in range(3)),
        )
        text = self.src.short() + ("  " + self.src.entity() if r.random() < 0.5 else "")
        while st.width(text) > w - 10 and " " in text:
            text = text.rsplit(" ", 1)[0]
        pw.text(x + 5, y + h * 0.68, text, st)
        return y + h + 6

    def caption(self, pw: PageWriter, x: float, y: float, w: float, y_max: float) -> float:
        r = self.rng
        st = self.style(7, 10)
        st.font = r.choice(("heit", "tiit", "coit")) if r.random() < 0.3 else st.font
        box_h = r.uniform(30, 120)
        if y + box_h + st.size * 2 > y_max:
            return y
        pw.page.draw_rect(
            pymupdf.Rect(x + 10, y + 4, x + w - 10, y + box_h),
            color=(0.5, 0.5, 0.5),
            fill=(0.95, 0.95, 0.95) if r.random() < 0.5 else None,
            width=0.5,
        )
        text = f"{r.choice(['Figure', 'Table', 'Fig.', 'Chart'])} {r.randint(1, 40)}: {self.src.sentence(3, 9)}"
        while st.width(text) > w and " " in text:
            text = text.rsplit(" ", 1)[0]
        y += box_h + st.size * 1.4
        pw.text(x + 10, y, text, st)
        return y + st.size

    # --- a page -------------------------------------------------------------------------------------
    def compose(self) -> pymupdf.Document:
        r = self.rng
        doc = pymupdf.open()
        self.new_palette()
        pw_, ph = r.choice(PAGE_SIZES)
        page = doc.new_page(width=pw_, height=ph)
        if r.random() < 0.15:  # tinted paper
            g = r.uniform(0.85, 0.97)
            page.draw_rect(page.rect, color=None, fill=(g, g, g * r.uniform(0.9, 1.0)))
        writer = PageWriter(page, r)
        m = r.uniform(30, 72)
        x0, x1, y, y_max = m, pw_ - m, m, ph - m
        if r.random() < 0.6:  # header
            st = self.style(7, 10)
            writer.text(x0, y, self.src.short(), st)
            t = self.src.date() if r.random() < 0.5 else self.src.code()
            writer.text(x1 - st.width(t), y, t, st)
            if r.random() < 0.5:
                page.draw_line((x0, y + 4), (x1, y + 4), width=0.5)
            y += 16
        if r.random() < 0.7:  # page number / footer
            st = self.style(7, 10)
            t = r.choice(
                [
                    f"{r.randint(1, 300)}",
                    f"Page {r.randint(1, 30)} of {r.randint(30, 60)}",
                    f"- {r.randint(1, 99)} -",
                    self.src.email(),
                ]
            )
            writer.text(r.choice([x0, (x0 + x1 - st.width(t)) / 2, x1 - st.width(t)]), ph - m / 2, t, st)
        blocks = ["heading", "para", "para", "para", "list", "table", "form", "band", "caption", "columns"]
        weights = [2, 5, 0, 0, 1.5, 2, 1.5, 1, 1, 3]
        while y < y_max - 20:
            kind = r.choices(blocks, weights)[0]
            w = x1 - x0
            if kind == "heading":
                y2 = self.heading(writer, x0, y, w, y_max)
            elif kind == "para":
                y2 = self.paragraph(writer, x0, y, w, y_max, self.style(), r.randint(2, 10))
            elif kind == "list":
                y2 = self.bullet_list(writer, x0, y, w, y_max)
            elif kind == "table":
                y2 = self.table(writer, x0, y, w, y_max)
            elif kind == "form":
                y2 = self.form(writer, x0, y, w * r.uniform(0.6, 1.0), y_max)
            elif kind == "band":
                y2 = self.band(writer, x0, y, w, y_max)
            elif kind == "caption":
                y2 = self.caption(writer, x0, y, w, y_max)
            else:  # 2-3 columns of paragraphs
                ncol = r.randint(2, 3)
                gap = r.uniform(10, 25)
                cw = (w - gap * (ncol - 1)) / ncol
                st = self.style(7, 11)
                n = r.randint(4, 25)
                y2 = max(self.paragraph(writer, x0 + i * (cw + gap), y, cw, y_max, st, n) for i in range(ncol))
            if y2 <= y:  # nothing fitted
                break
            y = y2 + r.uniform(2, 14)
        writer.flush()
        return doc

    def page(self, dpi: float = 150.0) -> SynthPage:
        doc = self.compose()
        page = doc[0]
        tokens = page_tokens(page, self.tok)
        image = render_gray(page, dpi)
        scale = image.shape[1] / page.rect.width
        mask = token_mask(tokens, image.shape[1], image.shape[0], scale)
        doc.close()
        return SynthPage(image=image, mask=mask, tokens=tokens, scale=scale, dpi=dpi)


def write_sample(p: SynthPage, stem: Path) -> None:
    """One sample for a person to look at: ``STEM.png``, the token mask in false colour ``STEM_mask.png``
    (neighbouring token ids get distant grey levels) and the tokens ``STEM.json``."""
    from PIL import Image

    Image.fromarray(p.image).save(stem.with_name(stem.name + ".png"))
    mask = ((p.mask * 47) % 251 + (p.mask > 0) * 4).astype(np.uint8)
    Image.fromarray(mask).save(stem.with_name(stem.name + "_mask.png"))
    stem.with_name(stem.name + ".json").write_text(json.dumps(p.to_json()))


def sample_options(description: str, n: int, dpi: float) -> argparse.ArgumentParser:
    """The options of a command that writes samples to look at (``--out``, ``-n``, ``--seed``, ``--dpi``)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", required=True)
    ap.add_argument("-n", type=int, default=n)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dpi", type=float, default=dpi)
    return ap


def write_samples(
    page: Callable[[], SynthPage], n: int, out: Path, stem: str, describe: Callable[[SynthPage], str]
) -> None:
    """``n`` pages as samples ``OUT/STEM000`` ... (:func:`write_sample`), a line each: ``STEM i: describe(page)``
    and the seconds it took."""
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        t0 = time.time()
        p = page()
        write_sample(p, out / f"{stem}{i:03d}")
        print(f"{stem} {i}: {describe(p)}, {time.time() - t0:.2f}s")


def main(argv: list[str] | None = None) -> None:
    from ..tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR

    a = sample_options("write synthetic sample pages (PNG, mask PNG, JSON)", n=5, dpi=150).parse_args(argv)
    synth = DocumentSynth(MiniTokenizer.from_file(WEIGHTS_DIR / TOKENIZER_FILE), seed=a.seed)
    write_samples(lambda: synth.page(a.dpi), a.n, Path(a.out), "page", lambda p: f"{len(p.tokens)} tokens")


if __name__ == "__main__":
    main()
