"""The mini model behind the TokenEncoder interface: token vectors, encode shapes, loading errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tokensearch.samples import calibration_pages
from tokensearch.tokenocr_model import TokenEncoder, create_encoder, mini, mini_encoder, mini_fast
from tokensearch.tokenocr_model.devices import winograd_available
from tokensearch.tokenocr_model.mini import MiniConfig, MiniModel, read_weights, save_weights
from tokensearch.tokenocr_model.mini_encoder import CODEBOOK_FILE, load_mini
from tokensearch.tokenocr_model.mini_fast import HALO_PX, fuse_conv_bn, ink_box, ink_frames
from tokensearch.tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR, WEIGHTS_FILE


@pytest.fixture(scope="module")
def enc():
    torch.set_num_threads(2)
    return create_encoder("mini")


def test_is_a_token_encoder(enc) -> None:
    assert isinstance(enc, TokenEncoder)
    assert enc.info.family == "mini" and enc.info.dim == enc.cfg.dim
    assert len(enc.info.fingerprint) == 64
    assert 0.0 < float(enc.info.extra["threshold"]) < 1.0
    assert enc.dpi == 150


def test_every_token_id_has_a_finite_unit_vector(enc) -> None:
    v = enc.token_vectors(range(enc.tokenizer.vocab_size))
    assert v.shape == (enc.tokenizer.vocab_size, enc.info.dim) and v.dtype == np.float32
    assert np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    with pytest.raises(IndexError):
        enc.token_vectors([enc.tokenizer.vocab_size])


def test_unseen_strings_get_distinct_vectors(enc) -> None:
    # strings no tokenizer training text contained still get (different) unit vectors
    v = enc.embed_strings([" Qxzvbrt", " Qxzvbrs", "ZK-99173", " Qxzvbrt"])
    assert np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(v[0], v[3], atol=1e-6)
    assert not np.allclose(v[0], v[1], atol=1e-4) and not np.allclose(v[0], v[2], atol=1e-4)
    q = enc.embed_query("Qxzvbrt ZK-99173")
    assert q.vectors.shape == (len(q.tokens), enc.info.dim) and len(q.tokens) >= 2
    np.testing.assert_allclose(q.vectors, enc.token_vectors([t.id for t in q.tokens]))


@pytest.mark.parametrize("size", [(1, 1), (7, 9), (8, 8), (17, 33), (101, 77), (640, 415)])
def test_encode_shapes_match_grid_shape(enc, size) -> None:
    w, h = size
    rng = np.random.default_rng(w * 1000 + h)
    imgs = [
        Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)),
        Image.new("RGB", (w, h), "white"),
        Image.new("RGBA", (w, h), (0, 0, 0, 0)),
    ]
    grids = enc.encode_pages(imgs)
    gh, gw = enc.grid_shape(w, h)
    assert (gh, gw) == (-(-h // 8), -(-w // 8))
    for g in grids:
        assert g.features.shape == (gh, gw, enc.info.dim) and g.text.shape == (gh, gw)
        assert np.isfinite(g.features).all() and ((g.text >= 0) & (g.text <= 1)).all()
        np.testing.assert_allclose(np.linalg.norm(g.features, axis=-1), 1.0, atol=1e-3)


def test_image_modes_are_read_as_gray_on_white() -> None:
    from tokensearch.tokenocr_model.mini import image_to_tensor

    gray = np.full((5, 7), 200, np.uint8)
    gray[2, 3] = 10
    ref = image_to_tensor(Image.fromarray(gray))
    assert ref.shape == (1, 5, 7)
    assert abs(float(ref[0, 2, 3]) - 10 / 255) < 1e-6
    sixteen = Image.fromarray(gray.astype(np.uint16) * 257)  # 16-bit scan
    torch.testing.assert_close(image_to_tensor(sixteen), ref, atol=1e-3, rtol=0)
    rgba = Image.new("RGBA", (7, 5), (0, 0, 0, 0))  # transparent = white paper
    assert float(image_to_tensor(rgba).min()) == 1.0
    torch.testing.assert_close(image_to_tensor(Image.fromarray(gray).convert("RGB")), ref, atol=2e-3, rtol=0)


def test_grid_is_aligned_with_the_page(enc) -> None:
    # a blot at pixel (px, py) changes the features most at cell (px // 8, py // 8), give or take one
    W, H = 333, 205  # not multiples of the stride: padding must not shift the grid
    base = np.full((H, W), 255, np.uint8)
    g0 = enc.encode_pages([Image.fromarray(base)])[0].features
    for px, py in [(5, 5), (200, 100), (328, 200), (100, 190)]:
        a = base.copy()
        a[max(0, py - 3) : py + 3, max(0, px - 3) : px + 3] = 0
        d = np.linalg.norm(enc.encode_pages([Image.fromarray(a)])[0].features - g0, axis=-1)
        y, x = np.unravel_index(int(d.argmax()), d.shape)
        assert abs(x - px // 8) <= 1 and abs(y - py // 8) <= 1, ((px, py), (x, y))


def test_batched_encoding_equals_single(enc) -> None:
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (90, 60), dtype=np.uint8)) for _ in range(3)]
    imgs.insert(1, Image.new("L", (50, 40), 255))  # a different size in the middle
    old = enc.batch_size
    try:
        enc.batch_size = 4
        batched = enc.encode_pages(imgs)
    finally:
        enc.batch_size = old
    for img, g in zip(imgs, batched):
        single = enc.encode_pages([img])[0]
        np.testing.assert_allclose(g.features, single.features, atol=1e-4)


def test_fused_inference_matches_training_graph() -> None:
    torch.manual_seed(0)
    m = MiniModel(MiniConfig())
    for mod in m.modules():  # non-trivial BatchNorm statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    m.eval()
    x = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        f1, t1 = m.vision(x)
        import copy

        f2, t2 = fuse_conv_bn(copy.deepcopy(m.vision))(x)
    torch.testing.assert_close(f1, f2, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(t1, t2, atol=1e-3, rtol=1e-4)


def _copy_weights(tmp_path: Path) -> Path:
    d = tmp_path / "w"
    d.mkdir()
    shutil.copy(WEIGHTS_DIR / WEIGHTS_FILE, d / WEIGHTS_FILE)
    shutil.copy(WEIGHTS_DIR / TOKENIZER_FILE, d / TOKENIZER_FILE)
    return d


def test_load_from_directory_and_fingerprint(tmp_path: Path, enc) -> None:
    d = _copy_weights(tmp_path)
    e2 = load_mini(d)
    assert e2.info.fingerprint == enc.info.fingerprint and e2.info.name == f"mini:{d}"
    # other weights -> other fingerprint
    state, cfg, extra = read_weights(d / WEIGHTS_FILE)
    m = MiniModel(cfg)
    m.load_state_dict(state)
    with torch.no_grad():
        m.vision.head.bias.add_(0.01)
    save_weights(m, d / WEIGHTS_FILE, extra=extra)
    assert load_mini(d).info.fingerprint != enc.info.fingerprint


def test_recalibrating_the_threshold_keeps_the_fingerprint(tmp_path: Path, enc) -> None:
    """A new threshold (weights metadata) does not change the features: indexes built stay valid."""
    d = _copy_weights(tmp_path)
    state, cfg, extra = read_weights(d / WEIGHTS_FILE)
    m = MiniModel(cfg)
    m.load_state_dict(state)
    save_weights(m, d / WEIGHTS_FILE, extra={**extra, "threshold": 0.5, "calibration": {"rule": "test"}})
    again = load_mini(d)
    assert again.info.extra["threshold"] == 0.5 and again.info.fingerprint == enc.info.fingerprint


def test_loading_reports_missing_and_unexpected_keys(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    d = _copy_weights(tmp_path)
    state, cfg, extra = read_weights(d / WEIGHTS_FILE)
    state.pop("vision.head.weight")
    state["vision.extra_layer.weight"] = torch.zeros(3)
    save_file(state, str(d / WEIGHTS_FILE), metadata={"config": json.dumps(asdict(cfg)), "extra": "{}"})
    with pytest.raises(ValueError) as e:
        load_mini(d)
    msg = str(e.value)
    assert "missing keys (1): vision.head.weight" in msg and "unexpected keys (1): vision.extra_layer.weight" in msg


def test_missing_files_say_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tokensearch train"):
        load_mini(tmp_path)
    d = _copy_weights(tmp_path)
    (d / TOKENIZER_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        load_mini(d)


def test_shipped_files_fit_the_size_budget() -> None:
    files = (WEIGHTS_FILE, TOKENIZER_FILE, CODEBOOK_FILE)
    assert sum((WEIGHTS_DIR / f).stat().st_size for f in files) <= 20 * 1024 * 1024


def test_bfloat16_features_are_unit_vectors_close_to_float32(enc) -> None:
    img = Image.new("L", (420, 160), "white")
    ImageDraw.Draw(img).text((10, 40), "Invoice 2020-11-24 total 1,234.50", fill=0)
    ref = enc.encode_pages([img])[0]
    bf = load_mini(dtype="bfloat16")
    assert bf.dtype == torch.bfloat16
    g = bf.encode_pages([img])[0]
    assert g.features.dtype == np.float32 and g.features.shape == ref.features.shape
    np.testing.assert_allclose(np.linalg.norm(g.features, axis=-1), 1.0, atol=1e-4)
    assert float((g.features * ref.features).sum(-1).min()) > 0.98
    assert float(np.abs(g.text - ref.text).max()) < 0.05


def test_unsupported_dtype_is_refused_loudly() -> None:
    with pytest.raises(ValueError, match="not supported on cpu"):
        load_mini(dtype="float16")


def _text_page(size=(900, 700), at=(300, 300)) -> Image.Image:
    img = Image.new("L", size, "white")
    d = ImageDraw.Draw(img)
    for i, line in enumerate(["Invoice 2020-11-24 total 1,234.50", "Harbour Logistics, Bristol", "Payment due"]):
        d.text((at[0], at[1] + 18 * i), line, fill=0)
    return img


def test_ink_box_is_the_ink_plus_the_receptive_field_on_stride_corners() -> None:
    x = torch.ones(1, 1, 700, 900)
    x[..., 300:340, 400:460] = 0.0
    y0, x0, y1, x1 = ink_box(x, 8)
    assert y0 % 8 == 0 and x0 % 8 == 0
    assert y0 <= 300 - HALO_PX[0] and x0 <= 400 - HALO_PX[1] and y1 >= 340 + HALO_PX[0] and x1 >= 460 + HALO_PX[1]
    assert (y1 - y0) * (x1 - x0) < 0.5 * 700 * 900  # the margins are skipped
    assert ink_frames(torch.ones(1, 1, 50, 60), 8) == [(0, 0, 8, 8)]  # a blank page: next to nothing to compute


def test_text_blocks_far_apart_are_framed_as_separate_bands() -> None:
    x = torch.ones(2, 1, 1000, 800)
    x[0, :, 100:120, 50:300] = 0.0  # a heading at the top left of one page
    x[1, :, 130:140, 600:700] = 0.0  # and a date at the right of the other (same band)
    x[0, :, 800:830, 400:500] = 0.0  # a footer far below
    bands = ink_frames(x, 8)
    assert len(bands) == 2
    (a0, ax0, a1, ax1), (b0, bx0, b1, bx1) = bands
    assert a0 <= 100 - HALO_PX[0] and a1 >= 140 + HALO_PX[0] and (ax0, ax1) == (0, 800)  # clipped to the page
    assert b0 <= 800 - HALO_PX[0] and b1 >= 830 + HALO_PX[0] and bx0 <= 400 - HALO_PX[1] and bx1 >= 500 + HALO_PX[1]
    assert a1 < b0 and all(v % 8 == 0 for v in (a0, ax0, b0, bx0))  # the paper between is not computed
    # rows closer than the receptive field plus the gap allowance stay in one band
    x[0, :, 220:230, 50:300] = 0.0
    assert len(ink_frames(x, 8)) == 2 and len(ink_frames(x[:, :, :400], 8)) == 1


def _two_block_page() -> Image.Image:
    img = _text_page(size=(900, 1100), at=(300, 100))
    d = ImageDraw.Draw(img)
    d.text((100, 900), "Page 2 of 7  Registered office: 14 Quay Street", fill=0)
    return img


def test_encoding_the_text_bands_gives_the_whole_page_features(enc, monkeypatch) -> None:
    img = _two_block_page()
    assert len(ink_frames(mini.image_to_tensor(img)[None], 8)) == 2
    framed = enc.encode_pages([img])[0]
    monkeypatch.setattr(mini_encoder, "ink_frames", lambda batch, stride: [(0, 0, batch.shape[-2], batch.shape[-1])])
    whole = enc.encode_pages([img])[0]
    text = whole.text > 0.5
    assert text[:60].sum() > 50 and text[100:].sum() > 20  # both blocks are read (grid rows: 8 px each)
    assert ((framed.text > 0.5) != text).sum() <= 0.01 * text.sum()
    assert float((framed.features[text] * whole.features[text]).sum(-1).min()) > 0.999
    # far from the ink, a cell is paper: a unit vector, not text
    np.testing.assert_allclose(np.linalg.norm(framed.features, axis=-1), 1.0, atol=1e-4)
    assert float(framed.text[:, :10].max()) < 0.5 and float(framed.text[40:100].max()) < 0.5


def test_int8_features_stay_close_to_float32(enc) -> None:
    img = _text_page()
    ref = enc.encode_pages([img])[0]
    q = load_mini(dtype="int8", int8_pages=calibration_pages)
    assert q.int8 and q.dtype == torch.float32
    g = q.encode_pages([img])[0]
    text = ref.text > 0.5
    cos = (g.features[text] * ref.features[text]).sum(-1)
    assert float(np.median(cos)) > 0.99 and float(np.percentile(cos, 5)) > 0.95
    assert ((g.text > 0.5) != text).sum() <= 0.1 * text.sum()
    np.testing.assert_allclose(np.linalg.norm(g.features, axis=-1), 1.0, atol=1e-4)


def test_int8_engine_is_onednn_only_on_cpus_without_int8_dot_products(monkeypatch) -> None:
    from tokensearch.tokenocr_model import devices

    monkeypatch.setattr(devices.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.backends.quantized, "engine", "x86")
    for flags, engine in (
        ({"avx2", "fma"}, "onednn"),
        ({"avx2", "avx512f", "avx512_vnni"}, "x86"),
        ({"avx2", "avx_vnni"}, "x86"),
        ({"avx2", "amx_int8"}, "x86"),
    ):
        monkeypatch.setattr(devices, "cpu_flags", lambda flags=flags: frozenset(flags))
        assert devices.int8_engine() == engine
    monkeypatch.setattr(devices.platform, "machine", lambda: "aarch64")  # Arm keeps torch's own engine
    assert devices.int8_engine() == torch.backends.quantized.engine


@pytest.mark.skipif(
    not {"onednn", "x86"} <= set(torch.backends.quantized.supported_engines), reason="not an x86 build with oneDNN"
)
def test_int8_engines_give_the_same_features_and_leave_the_process_setting_alone(monkeypatch) -> None:
    """The engine only picks whose kernels run the net: the activation ranges, hence the features the
    thresholds were calibrated on, are the same on each."""
    img = _text_page()
    before = torch.backends.quantized.engine
    grids = {}
    for engine in ("x86", "onednn"):
        q = load_mini(dtype="int8", int8_pages=calibration_pages)
        q.int8_engine = engine
        grids[engine] = q.encode_pages([img])[0]
        assert torch.backends.quantized.engine == before
    text = grids["x86"].text > 0.5
    assert text.sum() > 50
    cos = (grids["x86"].features[text] * grids["onednn"].features[text]).sum(-1)
    assert float(np.percentile(cos, 1)) > 0.995
    assert ((grids["onednn"].text > 0.5) != text).sum() <= 0.01 * text.sum()


def test_auto_dtype_takes_int8_on_every_cpu_given_pages_to_calibrate_on(monkeypatch) -> None:
    """int8 is what the shipped thresholds were calibrated in, so auto takes it on any CPU; without pages to
    measure activation ranges on, native bf16 where the CPU has it, else float32 (Winograd where NNPACK
    runs) (BENCHMARKS.md, "Precision and dtype")."""
    from tokensearch.tokenocr_model import devices

    for native_bf16 in (True, False):
        monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda native_bf16=native_bf16: native_bf16)
        enc = load_mini(dtype="auto", int8_pages=calibration_pages)
        assert enc.int8 and enc.dtype == torch.float32 and not enc.winograd
    # int8 calibrates on pages the caller gives (the model renders no documents): without them auto takes
    # the float path and int8 is refused with the fix
    with pytest.raises(ValueError, match="int8_pages"):
        load_mini(dtype="int8")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    plain = load_mini(dtype="auto")
    assert not plain.int8 and plain.dtype == torch.float32 and plain.winograd == winograd_available()
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    bf16 = load_mini(dtype="auto")
    assert not bf16.int8 and bf16.dtype == torch.bfloat16 and not bf16.winograd
    assert not load_mini(dtype="bfloat16", int8_pages=calibration_pages).int8
    assert not load_mini(dtype="float32", int8_pages=calibration_pages).int8
    assert not load_mini(dtype="bfloat16").winograd


@pytest.mark.skipif(not winograd_available(), reason="torch without NNPACK")
def test_winograd_inference_matches_the_training_net(enc) -> None:
    """The inference trunk (in-place ops, Winograd 3x3 convs, mixed layouts) computes the same function
    as VisionEncoder.trunk, on a batch of two pages of odd sizes."""
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.random((2, 1, 72, 136), dtype=np.float32))
    x[:, :, 20:30, 10:120] *= 0.2  # a dark "line" so the net sees ink
    with torch.no_grad():
        ref = enc.vision.trunk(x.clone())
        for layout in (torch.contiguous_format, torch.channels_last):
            out = mini_fast.infer_trunk(enc.vision, x.clone().contiguous(memory_format=layout), winograd=True)
            assert out.shape == ref.shape
            torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)


def test_the_shipped_codebook_is_the_shipped_weights_and_reads_their_cells_closely(enc) -> None:
    """The codebook new indexes store cells with is fitted for these weights (refit with them:
    training/codebook.py); on a page it was not fitted on it keeps each text cell's direction."""
    from tokensearch.storage.codec import CellCode

    shipped = load_mini()
    assert shipped.cell_codebook is not None
    code = CellCode(**shipped.cell_codebook)
    (grid,) = enc.encode_pages([calibration_pages(enc.dpi)[0]])
    cells = grid.features[grid.text >= 0.5].astype(np.float32)
    assert len(cells) > 500
    assert np.einsum("nd,nd->n", code.decode(code.encode(cells)), cells).mean() > 0.97


def test_a_codebook_fitted_for_other_weights_is_left_out(tmp_path: Path, caplog) -> None:
    d = _copy_weights(tmp_path)
    shutil.copy(WEIGHTS_DIR / CODEBOOK_FILE, d / CODEBOOK_FILE)
    assert load_mini(d).cell_codebook is not None  # the same weights in another folder
    with open(d / TOKENIZER_FILE, "a") as f:
        f.write("\n")  # other files: another fingerprint
    assert load_mini(d).cell_codebook is None
    assert "fitted for other weights" in caplog.text
