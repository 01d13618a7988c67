"""Synthetic receipts, invoices and forms: the pages real users search that documentation PDFs lack.

Three kinds of page, in the same record as :class:`.synth.DocumentSynth` (a :class:`.synth.SynthPage`:
image, token mask, tokens with boxes), so training mixes them in (``tokensearch train --receipt-fraction``):

- **till rolls** (58/80 mm wide, as tall as their content): store header, registration/GST/phone
  numbers, a title, invoice number, date and time in many formats, upper-case item lines with
  quantities and amounts right-aligned, dashed separators, totals/tax/rounding/cash/change, a tax
  summary, footer lines, sometimes a barcode; printed by a thermal head (a bitmap font: square dots,
  faded rolls, darkness drifting along the feed, dead-element streaks) or an impact dot-matrix printer
  (round, separated dots, missing dots), in monospace or condensed fonts, 32-64 characters a line;
- **A4 invoices**: a pre-printed letterhead, boxes and ruled item table, filled in by a laser,
  dot-matrix (slightly misregistered) or faint printer;
- **A4 forms**: labelled boxes, one-character comb boxes, check boxes, typed values.

Each page is two PyMuPDF layers of the same size: the paper (background, paper, pre-printed form)
and the print (what the printer put there). Their text layers give the tokens (:mod:`.pagetokens`);
the print layer is rendered, passed through :mod:`.print_effects`, and laid over the paper.
Fonts: Base14 Courier/Helvetica plus the installed monospace and condensed TrueType/OpenType fonts
(DejaVu Sans Mono/Condensed; Liberation Mono/Sans Narrow, FreeMono, Inconsolata, Noto Mono where
installed: docs/training-data.md). Text: :mod:`.textgen` words and the generators below. Seeded.

``python -m tokensearch.training.receipts --out DIR -n 6`` writes samples (PNG, mask PNG, JSON) to look at.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pymupdf

from ..tokenocr_model.mini_tokenizer import MiniTokenizer
from . import print_effects as fx
from .pagetokens import PageToken, page_tokens, render_gray, token_mask
from .receipt_text import ReceiptText
from .synth import PageWriter, Style, SynthPage, font_files, sample_options, write_samples

MM = 72 / 25.4  # points per millimetre
ROLLS = ((58, 48, (32, 42)), (80, 72, (42, 48, 56)), (76, 64, (40, 42)))  # paper mm, print mm, chars a line
A4 = (595, 842)


@lru_cache(maxsize=1)
def receipt_fonts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(monospace, condensed/sans) fonts: Base14 and installed files (no italics: printers rarely slant)."""
    files = [f for f in font_files() if not any(s in f for s in ("Oblique", "Italic"))]
    mono = ("cour", "cobo") + tuple(f for f in files if any(s in f for s in ("Mono", "Inconsolata", "Courier")))
    cond = ("helv", "hebo") + tuple(f for f in files if any(s in f for s in ("Condensed", "Narrow")))
    return mono, cond


def bold_of(font: str) -> str:
    """The bold face of ``font`` when it exists (double-strike and emphasised print)."""
    if font == "cour":
        return "cobo"
    if font == "helv":
        return "hebo"
    for a, b in (("-Regular", "-Bold"), ("Regular", "Bold"), (".ttf", "-Bold.ttf"), (".ttf", "Bold.ttf")):
        cand = font.replace(a, b)
        if cand != font and Path(cand).is_file():
            return cand
    return font


class Layout:
    """Recorded drawing in points: text rows for a page that is sized only once its content is known.

    ``ops`` are replayed on the paper layer (``pre=True``: pre-printed) or the print layer: text through
    the layer's :class:`.synth.PageWriter`, rules and boxes into one ``pymupdf.Shape`` per layer (one
    content-stream write each, drawn under the text)."""

    def __init__(self, x0: float, x1: float, y: float):
        self.x0, self.x1, self.y = x0, x1, y
        self.ops: list[tuple[bool, Callable[[PageWriter, pymupdf.Shape], object]]] = []

    def text(self, x: float, y: float, s: str, st: Style, pre: bool = False) -> None:
        if s:
            self.ops.append((pre, lambda pw, sh: pw.text(x, y, s, st)))

    def line(
        self,
        a: tuple[float, float],
        b: tuple[float, float],
        width: float = 0.6,
        dashes: str | None = None,
        gray: float = 0.0,
        pre: bool = False,
    ) -> None:
        def op(pw: PageWriter, sh: pymupdf.Shape) -> None:
            sh.draw_line(a, b)
            sh.finish(color=(gray,) * 3, width=width, dashes=dashes)

        self.ops.append((pre, op))

    def rect(
        self,
        r: tuple[float, float, float, float],
        width: float = 0.6,
        fill: float | None = None,
        gray: float = 0.0,
        pre: bool = False,
    ) -> None:
        def op(pw: PageWriter, sh: pymupdf.Shape) -> None:
            sh.draw_rect(pymupdf.Rect(*r))
            sh.finish(
                color=None if width == 0 else (gray,) * 3, fill=None if fill is None else (fill,) * 3, width=width
            )

        self.ops.append((pre, op))

    def row(
        self,
        st: Style,
        left: str = "",
        right: str = "",
        cols: tuple[tuple[float, str], ...] = (),
        lead: float = 1.25,
        pre: bool = False,
    ) -> None:
        """One printed line: ``left`` at x0, ``right`` right-aligned at x1, ``cols`` right-aligned at
        fractions of the width (quantities, unit prices); the left text is cut to leave room. Figures
        that would collide are printed as a till does: ``left`` alone, then the columns on the next
        line, left-aligned, before ``right``."""
        w, gap = self.x1 - self.x0, 0.6 * st.size
        spans = [(self.x0 + f * w - st.width(s), self.x0 + f * w) for f, s in cols]
        spans.append((self.x1 - st.width(right), self.x1))
        if any(a[1] > b[0] - gap for a, b in zip(spans, spans[1:])):
            self.row(st, left, lead=lead, pre=pre)
            left, cols, lead = "  " + "  ".join(s for _, s in cols), (), 1.1
        self.y += st.size * lead
        free = min([self.x1 - st.width(right)] + [self.x0 + f * w - st.width(s) for f, s in cols])  # first x in use
        while left and self.x0 + st.width(left) > free - gap:
            left = left[:-1]
        self.text(self.x0, self.y, left.rstrip(), st, pre)
        for frac, s in cols:
            self.text(self.x0 + frac * w - st.width(s), self.y, s, st, pre)
        self.text(self.x1 - st.width(right), self.y, right, st, pre)

    def center(self, st: Style, s: str, lead: float = 1.25, pre: bool = False) -> None:
        self.y += st.size * lead
        while st.width(s) > self.x1 - self.x0 and " " in s:
            s = s.rsplit(" ", 1)[0]
        self.text((self.x0 + self.x1 - st.width(s)) / 2, self.y, s, st, pre)

    def rule(self, st: Style, rng: random.Random) -> None:
        """A separator: a row of '-', '=' or '*' characters (text, as printers print it) or a drawn line."""
        if rng.random() < 0.6:
            ch = rng.choice("--=*_.")
            n = int((self.x1 - self.x0) / max(0.1, st.width(ch)))
            self.center(st, ch * n, lead=1.1)
        else:
            self.y += st.size * 0.7
            self.line(
                (self.x0, self.y),
                (self.x1, self.y),
                width=rng.uniform(0.4, 1.0),
                dashes=rng.choice([None, "[2 2] 0", "[3 1] 0"]),
            )
            self.y += st.size * 0.2


def render_layers(
    size: tuple[float, float],
    lay: Layout,
    dpi: float,
    paint_paper: Callable[[pymupdf.Page], None],
    tokenizer: MiniTokenizer,
) -> tuple[np.ndarray, np.ndarray, list[PageToken], float]:
    """Replay ``lay`` on a paper page and a print page -> (paper image, print image, tokens, px per pt).

    The tokens of both text layers, the paper's first (its lines numbered before the print's)."""
    doc = pymupdf.open()
    for _ in range(2):
        doc.new_page(width=size[0], height=size[1])
    pages = [doc[0], doc[1]]  # (adding a page resets earlier page objects)
    paint_paper(pages[0])
    writers = [PageWriter(p, random.Random(0)) for p in pages]  # (their rng is unused here)
    shapes = [p.new_shape() for p in pages]
    for pre, op in lay.ops:
        i = 0 if pre else 1
        op(writers[i], shapes[i])
    for sh, w in zip(shapes, writers):
        sh.commit()
        w.flush()
    tokens: list[PageToken] = []
    for p in pages:
        base = 1 + max((t.line for t in tokens), default=-1)
        tokens += [PageToken(t.id, t.piece, t.text, t.box, t.line + base) for t in page_tokens(p, tokenizer)]
    images = [render_gray(p, dpi) for p in pages]
    scale = images[0].shape[1] / size[0]
    doc.close()
    return images[0], images[1], tokens, scale


class ReceiptSynth:
    """Random receipts, invoices and forms; one instance per worker, seeded."""

    KINDS = (("till", 0.6), ("invoice", 0.25), ("form", 0.15))
    # render resolution per kind in training: till rolls print 6-9 pt, so higher DPI gives them the
    # pixel sizes of close-up receipt photos (cap heights ~8-25 px); A4 pages as the document synth
    DPI = {"till": (130.0, 280.0), "invoice": (105.0, 215.0), "form": (105.0, 215.0)}

    def __init__(self, tokenizer: MiniTokenizer, seed: int = 0):
        self.tok = tokenizer
        self.rng = random.Random(seed)
        self.txt = ReceiptText(self.rng)

    def page(self, dpi: float = 200.0, kind: str | None = None) -> SynthPage:
        """One page of ``kind`` (random by :attr:`KINDS` when None) rendered at ``dpi``."""
        r = self.rng
        kind = kind or r.choices([k for k, _ in self.KINDS], [w for _, w in self.KINDS])[0]
        if kind == "till":
            return self.till(dpi)
        return self.a4(dpi, form=kind == "form")

    def random_page(self) -> SynthPage:
        """A page of a random kind at a random resolution for that kind (:attr:`DPI`): training's draw."""
        kind = self.rng.choices([k for k, _ in self.KINDS], [w for _, w in self.KINDS])[0]
        return self.page(self.rng.uniform(*self.DPI[kind]), kind)

    # --- till rolls ---------------------------------------------------------------------------------
    def till(self, dpi: float) -> SynthPage:
        r, t = self.rng, self.txt
        t.new_document()
        paper_mm, print_mm, chars = r.choice(ROLLS)
        impact = r.random() < 0.3  # dot-matrix receipt printer; else thermal
        mono, cond = receipt_fonts()
        font = r.choice(mono) if r.random() < 0.75 else r.choice(cond)
        n_chars = r.choice(chars)
        avg = Style(font, 1.0, (0, 0, 0)).width("0123456789ABCDEFGHIJ") / 20
        size = min(11.0, max(5.5, print_mm * MM / (n_chars * avg)))
        st = Style(font, size, (0, 0, 0))
        bold = Style(bold_of(font), size, (0, 0, 0))
        big = Style(bold_of(font) if r.random() < 0.7 else font, size * r.choice([1.3, 1.6, 2.0]), (0, 0, 0))
        side = (paper_mm - print_mm) / 2 * MM
        bg = r.uniform(10, 60) * MM if r.random() < 0.35 else 0.0  # the table or scanner lid around the roll
        x0 = bg + side
        lay = Layout(x0, x0 + print_mm * MM, r.uniform(4, 12) * MM)
        cur = t.currency()
        # header
        store = t.store()
        lay.center(big if r.random() < 0.6 else bold, store, lead=1.2)
        if r.random() < 0.5:
            lay.center(st, t.company_reg())
        for line in t.address():
            lay.center(st, line)
        lay.center(st, t.phone_line())
        if r.random() < 0.6:
            lay.center(st, t.tax_reg())
        if r.random() < 0.8:
            lay.y += size * 0.4
            lay.center(bold if r.random() < 0.5 else st, t.title())
        lay.rule(st, r)
        # meta: invoice number, date and time, cashier...
        date, time = t.date(), t.time()
        number, when, clock, *others = t.meta_lines(date, time)
        both = r.random() < 0.4  # date and time on one line of their own
        metas = [m for m, p in ((number, 0.8), (clock, 0 if both else 0.85)) if r.random() < p]
        metas = [when] * (not both) + metas + r.sample(others, r.randint(0, len(others)))
        r.shuffle(metas)
        for label, value in metas:
            if r.random() < 0.5:
                lay.row(st, f"{label}{r.choice([':', ' :', ': ', ''])} {value}")
            else:
                lay.row(st, f"{label}{r.choice([':', ' :', ''])}", value)
        if both and r.random() < 0.6:
            lay.row(st, date, time)
        elif both:
            lay.row(st, f"{date} {time}")
        lay.rule(st, r)
        # items
        style = r.choice(["one", "one", "two", "plain"])
        q, p_col = r.uniform(0.48, 0.58), r.uniform(0.7, 0.78)
        if style == "one":
            lay.row(
                bold if r.random() < 0.4 else st,
                r.choice(["ITEM", "DESCRIPTION", "DESC", "ITEM NAME"]),
                r.choice(["AMOUNT", "AMT", "TOTAL", f"AMT({cur.strip() or 'RM'})"]),
                ((q, r.choice(["QTY", "QTY", "Q"])), (p_col, r.choice(["PRICE", "U/P", "U.PRICE", "RATE"]))),
            )
            lay.rule(st, r)
        total = 0
        tax_code = r.choice(["", "", "SR", "S", "Z", "T", "*"])
        for _ in range(r.randint(1, 14)):
            name, qty, unit = t.item()
            amt = qty * unit
            total += amt
            code = f" {tax_code}" if tax_code else ""
            if style == "one":
                lay.row(st, name, t.money(amt) + code, ((q, str(qty)), (p_col, t.money(unit))))
            elif style == "two":
                lay.row(st, (t.barcode() + " " if r.random() < 0.5 else "") + name)
                lay.row(st, f"  {qty} {r.choice(['X', 'x', '@', '*'])} {t.money(unit)}", t.money(amt) + code)
            else:
                lay.row(st, (f"{qty} " if qty > 1 else "") + name, cur + t.money(amt) + code)
            if r.random() < 0.08:
                disc = -round(amt * r.choice([0.05, 0.1, 0.2]))
                total += disc
                lay.row(
                    st,
                    f"  {r.choice(['DISC', 'DISCOUNT', 'PROMO', 'LESS'])} {r.choice(['', '10%', 'MEMBER'])}",
                    t.money(disc),
                )
        lay.rule(st, r)
        for label, value, emph in t.totals(total, cur):
            lay.row(big if emph and r.random() < 0.3 else bold if emph else st, label, value)
        if r.random() < 0.35:
            lay.rule(st, r)
            for label, values in t.tax_summary(total, cur):
                lay.row(st, label, values[-1], ((0.62, values[0]),) if len(values) > 1 else ())
        if r.random() < 0.6:
            lay.rule(st, r)
        for line in t.footer(date, time):
            lay.center(st, line)
        if r.random() < 0.25:  # barcode with its number under it
            lay.y += size * 0.8
            w_bar = (lay.x1 - lay.x0) * r.uniform(0.5, 0.8)
            x, h = (lay.x0 + lay.x1 - w_bar) / 2, size * r.uniform(2.5, 4)
            while x < (lay.x0 + lay.x1 + w_bar) / 2:
                bw = r.choice([0.6, 0.6, 1.2, 1.8])
                if r.random() < 0.55:
                    lay.rect((x, lay.y, x + bw, lay.y + h), width=0, fill=0.0)
                x += bw + r.choice([0.6, 1.2])
            lay.y += h
            lay.center(st, t.barcode(), lead=1.1)
        height = lay.y + r.uniform(6, 20) * MM
        width = x0 + print_mm * MM + side + bg
        g_bg = r.uniform(0.15, 0.75)

        def paint(page: pymupdf.Page) -> None:
            if bg:
                page.draw_rect(page.rect, color=None, fill=(g_bg,) * 3)
                page.draw_rect(pymupdf.Rect(bg, 0, width - bg, height), color=None, fill=(1, 1, 1))

        base, printed, tokens, scale = render_layers((width, height), lay, dpi, paint, self.tok)
        base = fx.paper(base, r, (round(bg * scale), 0, round((width - bg) * scale), base.shape[0]))
        amount = fx.ink(printed)
        cap_px = size * 0.72 * scale
        if impact:
            pitch = max(2, round(cap_px / r.uniform(6.5, 9)))
            amount = fx.dot_print(
                amount,
                r,
                (pitch, max(1, round(pitch * r.uniform(0.6, 1.0)))),
                round_dots=True,
                threshold=r.uniform(0.3, 0.5),
                dropout=r.uniform(0, 0.08),
            )
            tone = r.uniform(0.55, 0.9)
        else:
            if r.random() < 0.6 and cap_px > 8:
                pitch = max(1, round(cap_px / r.uniform(10, 16)))
                amount = fx.dot_print(amount, r, (pitch, pitch), round_dots=False, threshold=r.uniform(0.35, 0.5))
            amount = fx.thermal_fade(amount, r) if r.random() < 0.7 else amount
            tone = r.uniform(0.7, 1.0)
        return self._finish(base, amount, tone, tokens, scale, dpi)

    # --- A4 invoices and forms ----------------------------------------------------------------------
    def a4(self, dpi: float, form: bool) -> SynthPage:
        r, t = self.rng, self.txt
        t.new_document()
        mono, cond = receipt_fonts()
        sans = r.choice(cond + ("helv", "tiro"))
        pre = Style(sans, r.uniform(7.5, 10), (r.uniform(0, 0.3),) * 3)
        pre_b = Style(bold_of(sans), pre.size, pre.color)
        printer = r.choice(["laser", "dot", "faint"] if not form else ["laser", "typed", "dot"])
        vfont = r.choice(mono) if printer != "laser" or r.random() < 0.4 else r.choice(cond)
        val = Style(vfont, r.uniform(8, 11), (0, 0, 0))
        m = r.uniform(36, 60)
        W, H = A4
        lay = Layout(m, W - m, m)
        dx, dy = (r.uniform(-4, 4), r.uniform(-3, 3)) if printer == "dot" else (0.0, 0.0)  # misregistration
        # letterhead (pre-printed)
        head = Style(bold_of(sans), r.uniform(14, 22), pre.color)
        lay.text(m, m + head.size, t.store(), head, pre=True)
        lay.y = m + head.size * 1.3
        for line in t.address() + [t.phone_line(), t.tax_reg()]:
            lay.row(pre, line, lead=1.3, pre=True)
        title = t.title(a4=True, form=form)
        big = Style(bold_of(sans), r.uniform(16, 26), pre.color)
        lay.text(W - m - big.width(title), m + big.size, title, big, pre=True)
        lay.y += 14
        if form:
            self._form_body(lay, pre, pre_b, val, dx, dy)
        else:
            self._invoice_body(lay, pre, pre_b, val, dx, dy)
        lay.y += 20
        for line in t.a4_footer():
            if lay.y > H - m:
                break
            lay.row(pre, line, lead=1.4, pre=True)
        base, printed, tokens, scale = render_layers((W, H), lay, dpi, lambda page: None, self.tok)
        base = fx.paper(base, r)
        amount = fx.ink(printed)
        if printer == "dot":
            pitch = max(2, round(val.size * 0.72 * scale / r.uniform(7, 11)))
            amount = fx.dot_print(
                amount, r, (pitch, pitch), round_dots=True, threshold=r.uniform(0.3, 0.45), dropout=r.uniform(0, 0.05)
            )
        elif printer == "faint":
            amount = fx.thermal_fade(amount, r, floor=0.5)
        return self._finish(base, amount, r.uniform(0.6, 1.0) if printer != "laser" else 1.0, tokens, scale, dpi)

    def _invoice_body(self, lay: Layout, pre: Style, pre_b: Style, val: Style, dx: float, dy: float) -> None:
        r, t = self.rng, self.txt
        x0, x1 = lay.x0, lay.x1
        w = x1 - x0
        cur = t.currency()
        # bill-to box (left) and invoice details (right)
        top, bh = lay.y, val.size * 7.5
        lay.rect((x0, top, x0 + w * 0.55, top + bh), pre=True, gray=pre.color[0])
        label = r.choice(["BILL TO:", "Bill To", "SOLD TO", "CUSTOMER", "Messrs."])
        lay.text(x0 + 4, top + pre.size * 1.3, label, pre_b, pre=True)
        y = top + pre.size * 1.3
        for line in [t.store()] + t.address():
            y += val.size * 1.25
            lay.text(x0 + 8 + dx, y + dy, line, val)
        y = top
        for label, value in t.invoice_fields():
            y += val.size * 1.5
            lay.text(x0 + w * 0.6, y, label, pre, pre=True)
            lay.text(x0 + w * 0.8 + dx, y + dy, value, val)
        lay.y = top + bh + 16
        # the item table: pre-printed header and rules, printed rows
        cols = [
            ("NO.", 0.06),
            (r.choice(["DESCRIPTION", "PARTICULARS", "ITEM"]), 0.5),
            ("QTY", 0.62),
            (r.choice(["UNIT PRICE", "U/PRICE", "RATE"]), 0.8),
            (f"AMOUNT {cur.strip()}".strip(), 1.0),
        ]
        row_h = val.size * r.uniform(1.5, 2.0)
        ty = lay.y
        lay.rect((x0, ty, x1, ty + row_h), pre=True, fill=r.choice([None, 0.85, 0.92]), gray=pre.color[0])
        prev = 0.0
        for name, right in cols:
            lay.text(x0 + prev * w + 3, ty + row_h * 0.7, name, pre_b, pre=True)
            prev = right
        y = ty + row_h
        total = 0
        for i in range(r.randint(2, 12)):
            name, qty, unit = t.item(mixed_case=r.random() < 0.4)
            total += qty * unit
            y += row_h
            vals = [str(i + 1), name, str(qty), t.money(unit), t.money(qty * unit)]
            for (_, right), (_, left_edge), v in zip(cols, [("", 0.0)] + cols[:-1], vals):
                if right == 0.5:
                    while val.width(v) > (0.44 * w) and len(v) > 1:
                        v = v[:-1]
                    lay.text(x0 + left_edge * w + 3 + dx, y - row_h * 0.3 + dy, v, val)
                else:
                    lay.text(x0 + right * w - 3 - val.width(v) + dx, y - row_h * 0.3 + dy, v, val)
        lay.rect((x0, ty, x1, y + 4), pre=True, gray=pre.color[0])
        for _, right in cols[:-1]:
            lay.line((x0 + right * w, ty), (x0 + right * w, y + 4), pre=True, gray=pre.color[0])
        y += 8
        for label, value, _ in t.totals(total, cur, till=False):
            y += row_h
            lay.text(x0 + w * 0.55, y, label, pre_b, pre=True)
            lay.text(x1 - 3 - val.width(value) + dx, y + dy, value, val)
        y += row_h * 1.5
        lay.text(x0, y, t.amount_in_words(total), pre)
        lay.y = y

    def _form_body(self, lay: Layout, pre: Style, pre_b: Style, val: Style, dx: float, dy: float) -> None:
        r, t, src = self.rng, self.txt, self.txt.src
        x0, x1 = lay.x0, lay.x1
        y = lay.y
        while y < A4[1] - 160:
            kind = r.choices(["boxes", "comb", "check", "section"], [5, 2, 1.5, 1])[0]
            if kind == "section":
                y += pre.size * 2.2
                lay.rect((x0, y - pre.size * 1.3, x1, y + pre.size * 0.5), width=0, fill=r.uniform(0.75, 0.9), pre=True)
                title = f"{r.choice(['PART', 'SECTION', ''])} {r.choice('ABCD123')} {src.short().upper()}".strip()
                lay.text(x0 + 4, y, title, pre_b, pre=True)
                continue
            if kind == "check":
                y += pre.size * 2.2
                x = x0
                lay.text(x, y, src.word().capitalize() + ":", pre, pre=True)
                x += pre.width(src.word()) + 30
                for _ in range(r.randint(2, 4)):
                    s = pre.size
                    if x + s + 60 > x1:
                        break
                    lay.rect((x, y - s * 0.85, x + s, y + s * 0.15), pre=True)
                    if r.random() < 0.4:
                        lay.text(x + s * 0.15 + dx, y + dy, "X", val)
                    word = r.choice([src.word().upper(), "YES", "NO", "OTHERS", "MALE", "FEMALE"])
                    lay.text(x + s + 4, y, word, pre, pre=True)
                    x += s + pre.width(word) + 20
                continue
            # one to three labelled boxes on a row; comb boxes take one character each
            y += pre.size * 1.4
            n = 1 if kind == "comb" else r.randint(1, 3)
            bw = (x1 - x0 - 10 * (n - 1)) / n
            bh = val.size * 1.8
            for i in range(n):
                bx = x0 + i * (bw + 10)
                label = t.form_label()
                lay.text(bx, y, label, pre, pre=True)
                if kind == "comb":
                    value = r.choice([t.date().replace("/", "").replace("-", ""), t.id_number(), src.code()])[:24]
                    cw = val.size * r.uniform(1.3, 1.7)
                    for j, ch in enumerate(value):
                        cx = bx + j * cw
                        lay.rect((cx, y + 3, cx + cw, y + 3 + bh), pre=True, width=0.5)
                        lay.text(cx + (cw - val.width(ch)) / 2 + dx, y + 3 + bh * 0.72 + dy, ch, val)
                else:
                    lay.rect((bx, y + 3, bx + bw, y + 3 + bh), pre=True, width=0.6)
                    value = t.form_value(label)
                    while val.width(value) > bw - 8 and len(value) > 1:
                        value = value[:-1]
                    lay.text(bx + 4 + dx, y + 3 + bh * 0.72 + dy, value, val)
            y += bh + 6
        lay.y = y

    # --- shared -------------------------------------------------------------------------------------
    def _finish(
        self, base: np.ndarray, amount: np.ndarray, tone: float, tokens: list, scale: float, dpi: float
    ) -> SynthPage:
        image = fx.compose(base, amount, tone)
        mask = token_mask(tokens, image.shape[1], image.shape[0], scale)
        return SynthPage(image=image, mask=mask, tokens=tokens, scale=scale, dpi=dpi)


def main(argv: list[str] | None = None) -> None:
    from ..tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR

    ap = sample_options("write synthetic receipts, invoices and forms (PNG, mask PNG, JSON)", n=6, dpi=200)
    ap.add_argument("--kind", choices=[k for k, _ in ReceiptSynth.KINDS], default=None)
    a = ap.parse_args(argv)
    synth = ReceiptSynth(MiniTokenizer.from_file(WEIGHTS_DIR / TOKENIZER_FILE), seed=a.seed)
    write_samples(
        lambda: synth.page(a.dpi, a.kind),
        a.n,
        Path(a.out),
        "receipt",
        lambda p: f"{p.image.shape[1]}x{p.image.shape[0]} px, {len(p.tokens)} tokens",
    )


if __name__ == "__main__":
    main()
