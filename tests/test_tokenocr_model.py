"""The official TokenOCR architecture on tiny checkpoints in the official format (CPU, seconds)."""

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from tests.tokenocr_factory import TINY_D, make_tiny_checkpoint
from tokensearch.tokenocr_model import TokenEncoder, create_encoder, devices, tiling
from tokensearch.tokenocr_model.devices import autocast, resolve_device, resolve_dtype
from tokensearch.tokenocr_model.tokenocr import Attention, VisionConfig, load_model, load_tokenocr


@pytest.fixture(scope="module")
def ckpt_up(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("up"), upsample=True)


@pytest.fixture(scope="module")
def ckpt_noup(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("noup"), upsample=False)


@pytest.fixture(scope="module")
def enc(ckpt_up):
    return load_tokenocr(ckpt_up, cell_pool=1)


def page(w=300, h=140, text="Invoice 2020"):
    img = Image.new("RGB", (w, h), "white")
    ImageDraw.Draw(img).text((10, 10), text, fill="black")
    return img


def test_registry_builds_a_token_encoder(ckpt_up):
    e = create_encoder(f"tokenocr:{ckpt_up}")
    assert isinstance(e, TokenEncoder)
    assert e.info.family == "tokenocr" and e.info.dim == TINY_D and e.info.name == f"tokenocr:{ckpt_up}"
    assert e.info.extra["threshold"] == 0.2 and e.info.extra["variant"] == "upsample"
    assert len(e.info.fingerprint) == 64


@pytest.mark.parametrize("upsample, cells", [(True, 16), (False, 4)])
def test_forward_shapes_both_variants(tmp_path, upsample, cells):
    model, table, _ = load_model(make_tiny_checkpoint(tmp_path, upsample=upsample))
    assert (model.upsample is not None) == upsample
    assert model.cfg.cells_per_tile == cells  # 56 px tiles / 14 px patches = 4, x4 with the upsampler
    out = model(torch.randn(3, 3, 56, 56))
    assert out.shape == (3, cells, cells, TINY_D) and torch.isfinite(out).all()
    assert table.shape[1] == TINY_D


def test_sharded_checkpoint_loads_identically(tmp_path, ckpt_up):
    sharded = make_tiny_checkpoint(tmp_path, upsample=True, sharded=True)
    assert (sharded / "model.safetensors.index.json").is_file() and not (sharded / "model.safetensors").exists()
    a, ta, _ = load_model(ckpt_up)
    b, tb, _ = load_model(sharded)
    x = torch.randn(2, 3, 56, 56)
    assert torch.equal(a(x), b(x)) and torch.equal(ta, tb)


def test_raw_training_names_are_accepted(tmp_path, ckpt_up):
    raw = make_tiny_checkpoint(tmp_path, raw_training_names=True)
    model, table, _ = load_model(raw)
    _, ref_table, _ = load_model(ckpt_up)
    assert torch.equal(table, ref_table)


def test_encode_pages_shapes_units_text_and_grid(enc):
    imgs = [page(300, 140), page(60, 60), Image.new("L", (120, 400), 255)]
    grids = enc.encode_pages(imgs)
    assert len(grids) == 3
    for img, g in zip(imgs, grids):
        assert g.shape == enc.grid_shape(*img.size)
        assert g.features.dtype == np.float16 and g.features.shape[-1] == TINY_D
        norms = np.linalg.norm(g.features.astype(np.float32), axis=-1)
        assert np.allclose(norms, 1, atol=2e-3)
        assert g.text.dtype == np.float32 and ((g.text >= 0) & (g.text <= 1)).all()
    cols, rows = tiling.closest_grid(300, 140, tile_size=56)
    assert grids[0].shape == (16 * rows, 16 * cols)
    assert grids[1].shape == (16, 16)  # single tile: no thumbnail, no lost tile
    assert enc.encode_pages([]) == []


def test_batching_does_not_change_features(ckpt_up):
    small = load_tokenocr(ckpt_up, cell_pool=1, vit_batch=1, head_batch=1)
    big = load_tokenocr(ckpt_up, cell_pool=1, vit_batch=64, head_batch=64)
    imgs = [page(300, 140), page(90, 200)]
    a = [g.features.astype(np.float32) for g in small.encode_pages(imgs)]
    b = [g.features.astype(np.float32) for g in big.encode_pages(imgs)]
    c = big.encode_pages(imgs[1:])[0].features.astype(np.float32)
    for x, y in zip(a, b):
        assert np.abs(x - y).max() < 2e-3
    assert np.abs(c - b[1]).max() < 2e-3


def test_encoder_matches_model_forward_and_stitching(ckpt_up, enc):
    img = page(300, 140)
    tiles, (cols, rows) = tiling.dynamic_preprocess(img, tile_size=56, use_thumbnail=False)
    with torch.no_grad():
        ref = enc.model(torch.from_numpy(tiling.normalize_tiles(tiles)))
    ref = F.normalize(tiling.stitch_tiles(ref, cols, rows), dim=-1).numpy()
    got = enc.encode_pages([img])[0].features.astype(np.float32)
    assert np.abs(got - ref).max() < 2e-3


@pytest.mark.parametrize("pool", [2, 4])
def test_cell_pool_is_renormalised_average_and_max_text(ckpt_up, enc, pool):
    pooled = load_tokenocr(ckpt_up, cell_pool=pool)
    img = page(300, 140)
    full = enc.encode_pages([img])[0]
    got = pooled.encode_pages([img])[0]
    H, W = full.shape
    assert got.shape == (H // pool, W // pool) == pooled.grid_shape(300, 140)
    f = full.features.astype(np.float32).reshape(H // pool, pool, W // pool, pool, -1).mean(axis=(1, 3))
    f /= np.linalg.norm(f, axis=-1, keepdims=True)
    assert np.abs(got.features.astype(np.float32) - f).max() < 5e-3
    t = full.text.reshape(H // pool, pool, W // pool, pool).max(axis=(1, 3))
    assert np.abs(got.text - t).max() < 1e-3
    assert pooled.info.extra["cell_px"] == pytest.approx(56 / 16 * pool)


def test_default_pool_is_2_for_upsample_1_without(ckpt_up, ckpt_noup):
    assert load_tokenocr(ckpt_up).cell_pool == 2
    assert load_tokenocr(ckpt_noup).cell_pool == 1
    with pytest.raises(ValueError, match="cell_pool"):
        load_tokenocr(ckpt_up, cell_pool=3)


def test_text_references(ckpt_up):
    space = load_tokenocr(ckpt_up, cell_pool=1, text_reference="space")
    g = space.encode_pages([page()])[0]
    cos_space = g.features.astype(np.float32) @ space.token_vectors([space.tokenizer.space_id])[0]
    assert np.allclose(g.text, 1 / (1 + np.exp(10 * cos_space)), atol=2e-3)
    contrast = load_tokenocr(ckpt_up, cell_pool=1, text_reference="contrast")
    t = contrast.encode_pages([page()])[0].text
    assert ((t >= 0) & (t <= 1)).all()
    with pytest.raises(ValueError):
        load_tokenocr(ckpt_up, text_reference="bogus")


def test_query_vectors_are_table_rows(enc):
    q = enc.embed_query("Invoice 2020")
    assert q.vectors.shape == (len(q.tokens), TINY_D)
    assert np.allclose(np.linalg.norm(q.vectors, axis=1), 1, atol=1e-5)
    ids = [t.id for t in q.tokens]
    rows = enc.table[ids].float().numpy()
    assert np.allclose(q.vectors, rows / np.linalg.norm(rows, axis=1, keepdims=True), atol=1e-6)
    assert enc.tokenizer.space_id not in ids  # the background token never joins a query
    assert enc.embed_query("   ").tokens == []
    with pytest.raises(ValueError, match="out of range"):
        enc.token_vectors([enc.table.shape[0]])
    # every id of the vocabulary has a vector (special tokens included)
    assert enc.token_vectors(range(enc.tokenizer.vocab_size)).shape == (enc.tokenizer.vocab_size, TINY_D)
    vocab = enc.vocabulary()  # what a verified search compares a match against: the whole table
    assert vocab.shape == (enc.table.shape[0], TINY_D) and np.allclose(vocab[ids], q.vectors, atol=1e-6)


def test_bfloat16_on_cpu_runs_close_to_float32(ckpt_up, enc):
    bf = load_tokenocr(ckpt_up, dtype="bfloat16", cell_pool=1)
    assert next(bf.model.parameters()).dtype == torch.bfloat16
    a = enc.encode_pages([page()])[0].features.astype(np.float32)
    b = bf.encode_pages([page()])[0].features.astype(np.float32)
    cos = (a * b).sum(-1)
    assert cos.mean() > 0.97


def test_attention_equals_official_naive_attention():
    cfg = VisionConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64, num_hidden_layers=1)
    attn = Attention(cfg)
    x = torch.randn(2, 17, 32)
    B, N, C = x.shape
    qkv = attn.qkv(x).reshape(B, N, 3, 4, C // 4).permute(2, 0, 3, 1, 4)  # the official layout
    q, k, v = qkv.unbind(0)
    w = ((q * (C // 4) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
    ref = attn.proj((w @ v).transpose(1, 2).reshape(B, N, C))
    assert torch.allclose(attn(x), ref, atol=1e-5)


def test_position_embedding_interpolation(enc):
    emb = enc.model.vision_model.embeddings
    assert torch.equal(emb.positions(4, 4), emb.position_embedding)  # native grid untouched
    bigger = emb.positions(6, 8)
    assert bigger.shape == (1, 1 + 48, 32) and torch.equal(bigger[:, :1], emb.position_embedding[:, :1])
    # a model fed 84 px tiles (6x6 patches) still runs
    out = enc.model(torch.randn(1, 3, 84, 84))
    assert out.shape == (1, 24, 24, TINY_D)


def test_select_layer_runs_fewer_blocks(tmp_path):
    d = make_tiny_checkpoint(tmp_path, config_edit=lambda c: c.update(select_layer=-2))
    model, _, _ = load_model(d)
    assert model.cfg.n_layers_used == 1
    x = torch.randn(1, 3, 56, 56)
    h = model.vision_model(x, 1)
    assert torch.equal(model(x), model.head(h))


def test_devices_are_validated_and_never_default_to_cuda():
    cpu = resolve_device("cpu")
    assert resolve_dtype("bf16", cpu) == torch.bfloat16 and resolve_dtype("float32", cpu) == torch.float32
    with pytest.raises(ValueError, match="not supported on cpu"):
        resolve_dtype("float16", cpu)
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("int4", cpu)
    with pytest.raises(ValueError, match="mini model"):  # TokenOCR has no int8 path
        resolve_dtype("int8", cpu)
    cuda = torch.device("cuda")  # the dtype table for GPUs, checkable without one
    assert resolve_dtype("float16", cuda) == torch.float16 and resolve_dtype("bfloat16", cuda) == torch.bfloat16
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError):
        resolve_device("tpu")
    assert type(autocast(cpu, torch.bfloat16)).__name__ == "nullcontext"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available ... Disabling autocast" on CPU machines
        assert isinstance(autocast(cuda, torch.bfloat16), torch.autocast)


def test_auto_dtype_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("AUTO", cpu) == torch.float32


def test_native_bf16_detection_reads_the_cpu_flags():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    expected = (" avx512_bf16" in flags or " amx_bf16" in flags) and torch.backends.mkldnn.is_available()
    assert devices.cpu_has_native_bf16() == expected


def test_fingerprint_follows_the_weights(tmp_path, ckpt_up, enc):
    same = make_tiny_checkpoint(tmp_path / "same")
    other = make_tiny_checkpoint(tmp_path / "other", seed=1)
    assert load_tokenocr(same).info.fingerprint == enc.info.fingerprint
    assert load_tokenocr(other).info.fingerprint != enc.info.fingerprint


def test_tiny_forward_time_is_small(enc, capsys):
    imgs = [page(1275, 1650)] * 2  # 2 letter pages -> 24 tiles
    enc.encode_pages(imgs[:1])
    t = time.perf_counter()
    enc.encode_pages(imgs)
    dt = time.perf_counter() - t
    with capsys.disabled():
        print(f"\n[tiny TokenOCR] 2 letter pages (24 tiles of 56 px): {dt * 1000:.0f} ms")
    assert dt < 10


def test_contrast_text_rule_marks_the_odd_cells(ckpt_up):
    enc = load_tokenocr(ckpt_up, cell_pool=1, text_reference="contrast")
    g = torch.Generator().manual_seed(0)
    background = F.normalize(torch.randn(TINY_D, generator=g), dim=0)
    unit = background.repeat(1, 8, 8, 1) + 0.01 * torch.randn(1, 8, 8, TINY_D, generator=g)
    unit[0, 2, 3] = F.normalize(torch.randn(TINY_D, generator=g), dim=0)  # one "glyph" cell
    text = enc._text_probability(F.normalize(unit, dim=-1))
    others = torch.cat([text[0].flatten()[: 2 * 8 + 3], text[0].flatten()[2 * 8 + 4 :]])
    assert text[0, 2, 3] > 0.99 and others.mean() < 0.2
