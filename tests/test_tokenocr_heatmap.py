"""Per-token heatmaps: files for every token + the whole query, from an image or a PDF page."""

import argparse

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.builders import write_pdf
from tests.tokenocr_factory import make_tiny_checkpoint
from tokensearch.errors import BadDocument
from tokensearch.heatmap import add_heatmap_arguments, render_heatmaps, run_heatmap, similarity_maps, title_font
from tokensearch.highlight import LUT, colourise
from tokensearch.tokenocr_model.tokenocr import load_tokenocr


@pytest.fixture(scope="module")
def enc(tmp_path_factory):
    return load_tokenocr(make_tiny_checkpoint(tmp_path_factory.mktemp("hm")))


def _page():
    img = Image.new("RGB", (240, 160), "white")
    ImageDraw.Draw(img).text((10, 10), "Invoice total 2020", fill="black")
    return img


def test_maps_are_absolute_cosines(enc):
    labels, maps = similarity_maps(enc, _page(), "total 2020")
    q = enc.embed_query("total 2020")
    assert len(labels) == len(q.tokens) and maps.shape[0] == len(q.tokens)
    assert maps.shape[1:] == enc.grid_shape(240, 160)
    assert (np.abs(maps) <= 1.0 + 1e-3).all()


def test_render_writes_one_file_per_token_and_the_query(enc, tmp_path):
    paths = render_heatmaps(enc, _page(), "total 2020", tmp_path / "out")
    n_tokens = len(enc.embed_query("total 2020").tokens)
    assert len(paths) == n_tokens + 1 and paths[-1].name == "query.png"
    for p in paths:
        assert p.is_file()
        with Image.open(p) as im:
            assert im.width > 240 and im.height > 160  # page + colour bar + title
    with pytest.raises(ValueError, match="no tokens"):
        render_heatmaps(enc, _page(), "   ", tmp_path / "empty")


def test_cli_on_a_pdf_page(enc, tmp_path):
    pages = [["first page"], ["Invoice 2020"]]
    pdf = write_pdf(tmp_path / "doc.pdf", pages, width=200, height=150, fontsize=11, x=20, y=40)
    parser = add_heatmap_arguments(argparse.ArgumentParser())
    args = parser.parse_args([str(pdf), "Invoice", "-o", str(tmp_path / "maps"), "--page", "2"])
    assert run_heatmap(args, enc) == 0
    paths = sorted((tmp_path / "maps").glob("*.png"))
    assert len(paths) == len(enc.embed_query("Invoice").tokens) + 1
    with Image.open(tmp_path / "maps" / "query.png") as im:  # 200 pt at 150 dpi = 417 px wide page, plus the bar
        assert im.width > 400
    bad = parser.parse_args([str(pdf), "x", "--page", "3"])
    with pytest.raises(BadDocument, match="out of range"):
        run_heatmap(bad, enc)


def test_colour_map_endpoints():  # inferno-like: near-black at 0, pale yellow at 1, clipped outside
    c = colourise(np.array([-1.0, 0.0, 1.0, 2.0, np.nan]))
    assert c.tolist() == [[0, 0, 4], [0, 0, 4], [252, 255, 164], [252, 255, 164], [0, 0, 4]]
    assert LUT.shape == (256, 3) and (np.diff(LUT.astype(int).sum(axis=1)) >= -3).all()  # brightness rises


def test_the_viewer_takes_the_same_colour_table():  # colormap.js is what highlight.py writes, loaded first
    from pathlib import Path

    import tokensearch.api
    from tokensearch.highlight import colormap_js

    static = Path(tokensearch.api.__file__).parent / "static"
    assert (static / "colormap.js").read_text(encoding="utf-8") == colormap_js(), (
        "regenerate: python -m tokensearch.highlight > tokensearch/api/static/colormap.js"
    )
    numbers = colormap_js().split("[", 1)[1].split("]", 1)[0].replace("\n", "").split(",")
    assert [int(n) for n in numbers if n.strip()] == LUT.ravel().tolist()
    html = (static / "index.html").read_text(encoding="utf-8")
    assert 0 <= html.index("/static/colormap.js") < html.index("/static/viewer.js")
    assert "HEAT_LUT" in (static / "viewer.js").read_text(encoding="utf-8")


def test_a_chinese_query_gets_files_and_titles_in_chinese(tmp_path):
    enc = load_tokenocr(make_tiny_checkpoint(tmp_path / "ckpt", bilingual=True))
    img = Image.new("RGB", (240, 160), "white")
    paths = render_heatmaps(enc, img, "发票总金额", tmp_path / "out")
    assert [p.name for p in paths] == [
        f"{i:02d}_{t.piece.strip(chr(0x2581))}.png" for i, t in enumerate(enc.embed_query("发票总金额").tokens)
    ] + ["query.png"]
    assert any("\u53d1" in p.name for p in paths)  # 发
    # the title font draws each character (PIL's default draws the same box for every CJK character)
    font = title_font("token 0: '发票'")

    def glyph(ch: str) -> bytes:
        im = Image.new("L", (16, 16))
        ImageDraw.Draw(im).text((0, 0), ch, font=font, fill=255)
        return im.tobytes()

    assert glyph("发") != glyph("票")
    assert title_font("token 0: 'total'") is not font
