"""Training smoke test: a few steps on tiny crops, checkpoint, resume, loadable result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tokensearch.tokenocr_model.mini_encoder import load_mini
from tokensearch.training.train import TrainConfig, train

# integration: training steps, checkpoints and resume
pytestmark = pytest.mark.integration


def _cfg(out: Path, steps: int, resume: bool = False) -> TrainConfig:
    return TrainConfig(
        out=str(out),
        steps=steps,
        batch_size=2,
        crop_height=64,
        crop_width=96,
        val_crops=2,
        val_every=2,
        log_every=1,
        workers=0,
        buffer=2,
        reuse=2,
        resume=resume,
        warmup=1,
        ckpt_minutes=0.0,
    )


def test_train_three_steps_with_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = train(_cfg(out, 2))
    assert {"val_token_acc", "val_cell_acc", "val_loss"} <= set(res)
    ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 2
    before = {k: v.clone() for k, v in ck["model"].items()}

    train(_cfg(out, 3, resume=True))
    ck = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 3
    assert any(not torch.equal(before[k], v) for k, v in ck["model"].items() if v.dtype.is_floating_point)

    log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    assert log[0]["event"] == "start"
    assert any(r.get("event") == "resume" and r["step"] == 2 for r in log)
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in log if "loss" in r)

    enc = load_mini(out)  # the run directory is a loadable model
    assert enc.info.extra["trained_steps"] >= 2
    g = enc.encode_pages([__import__("PIL.Image", fromlist=["Image"]).new("L", (40, 24), 255)])[0]
    assert g.features.shape == (3, 5, enc.info.dim)


def test_a_run_with_receipts_is_validated_and_chosen_on_receipts_too(tmp_path: Path) -> None:
    """With ``receipt_fraction`` > 0, validation also scores synthetic receipt crops (logged apart) and
    the best checkpoint is chosen by the mean of the two token accuracies."""
    from dataclasses import replace

    out = tmp_path / "run"
    res = train(replace(_cfg(out, 2), receipt_fraction=0.5, val_init=True))
    assert {"val_token_acc", "val_receipt_token_acc", "val_receipt_cell_acc", "val_score"} <= set(res)
    assert res["val_score"] == (res["val_token_acc"] + res["val_receipt_token_acc"]) / 2
    assert (out / "val_receipts.pt").is_file()
    log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    init = next(r for r in log if r.get("event") == "init_val")
    assert "val_receipt_token_acc" in init
    chosen = [r for r in log if r.get("saved")]
    assert chosen and all(r["best"] == r["val_score"] for r in chosen)
    assert load_mini(out).info.extra["val_receipt_token_acc"] == round(res["val_receipt_token_acc"], 4)

    plain = train(_cfg(tmp_path / "plain", 1))  # without receipts: documents alone, as before
    assert "val_receipt_token_acc" not in plain and plain["val_score"] == plain["val_token_acc"]


def test_finetune_on_pdfs_starts_from_given_weights(tmp_path: Path) -> None:
    from tests.builders import write_pdf
    from tokensearch.tokenocr_model.mini_files import WEIGHTS_DIR
    from tokensearch.training.train import finetune

    pdfs = tmp_path / "pdfs"
    lines = [f"Order {i} INV-2023-00{i} shipped 11/12/2020" for i in range(8)]
    write_pdf(pdfs / "a.pdf", [lines], width=300, height=200, fontsize=10, x=20, y=30, leading=20)
    out = tmp_path / "ft"
    res = finetune(
        str(pdfs),
        out=str(out),
        steps=2,
        synth_fraction=0.0,
        batch_size=2,
        crop_height=64,
        crop_width=96,
        val_crops=2,
        val_every=2,
        log_every=1,
        workers=0,
        buffer=1,
        reuse=2,
    )
    assert "val_token_acc" in res
    log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    assert log[0]["config"]["init"] == str(WEIGHTS_DIR) and log[0]["config"]["pdf_dir"] == str(pdfs)
    assert load_mini(out).info.dim == load_mini(None).info.dim


def test_growing_a_model_keeps_its_output_and_only_adds_blocks() -> None:
    import pytest

    from tokensearch.tokenocr_model.mini import MiniConfig, MiniModel
    from tokensearch.training.train import grow_state

    torch.manual_seed(0)
    small = MiniModel(MiniConfig(n_blocks=2, quarter_blocks=0)).eval()
    for mod in small.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
    big = MiniModel(MiniConfig(n_blocks=4, quarter_blocks=1)).eval()
    new = grow_state(big, small.state_dict(), small.cfg, "small")
    assert new and all(k.startswith(("vision.blocks.2.", "vision.blocks.3.", "vision.quarter.0.")) for k in new)
    x = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(big.vision(x)[0], small.vision(x)[0])
    with pytest.raises(ValueError, match="only n_blocks, quarter_blocks may increase"):
        grow_state(MiniModel(MiniConfig(n_blocks=2, dim=64)), small.state_dict(), small.cfg, "small")
    with pytest.raises(ValueError, match="may increase"):
        grow_state(MiniModel(MiniConfig(n_blocks=1)), small.state_dict(), small.cfg, "small")


def test_bf16_autocast_step_gives_float32_losses_close_to_float32() -> None:
    from tokensearch.tokenocr_model.mini import MiniConfig, MiniModel
    from tokensearch.tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR
    from tokensearch.tokenocr_model.mini_tokenizer import MiniTokenizer
    from tokensearch.training.data import collate
    from tokensearch.training.train import losses, make_val_set, train_amp_dtype

    assert train_amp_dtype("float32") is None and train_amp_dtype("bfloat16") == torch.bfloat16
    torch.manual_seed(0)
    model = MiniModel(MiniConfig()).train()
    pieces = MiniTokenizer.from_file(WEIGHTS_DIR / TOKENIZER_FILE).pieces()
    batch = collate(make_val_set(str(WEIGHTS_DIR / TOKENIZER_FILE), 2, 64, 96))
    ref = losses(model, batch, pieces)
    bf = losses(model, batch, pieces, torch.bfloat16)
    assert set(bf) == set(ref)
    for k in ref:
        assert bf[k].dtype == torch.float32 and torch.isfinite(bf[k])
        b, r = bf[k].item(), ref[k].item()
        assert abs(b - r) < 0.05 * max(1.0, abs(r)), k
    sum(bf.values()).backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_the_same_seed_trains_the_same_weights(tmp_path: Path) -> None:
    """`tokensearch train` is seeded end to end (synthetic pages, crops, augmentation, init, batches,
    in a data worker process as by default): two runs give identical weights, a third seed does not."""
    from dataclasses import replace

    def weights(name: str, seed: int) -> dict[str, torch.Tensor]:
        cfg = replace(_cfg(tmp_path / name, 3), seed=seed, workers=1, precision="float32")
        train(cfg)
        return torch.load(tmp_path / name / "ckpt.pt", map_location="cpu", weights_only=False)["model"]

    a, b, c = weights("a", 0), weights("b", 0), weights("c", 1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].dtype.is_floating_point)


def test_the_vocab_loss_falls_as_a_pooled_instance_reads_its_own_token_over_the_whole_vocabulary() -> None:
    """The ``vocab`` term is a cross-entropy over every token: lowest where the instance points at its own
    token, high where it points at another vocabulary token, and its own (stale) bank row is replaced by the
    vector that carries the composer's gradient."""
    import torch.nn.functional as F

    from tokensearch.training.train import vocab_loss

    torch.manual_seed(0)
    bank = F.normalize(torch.randn(50, 16), dim=-1)
    ids = torch.tensor([3, 7])
    own = bank[ids].clone().requires_grad_(True)
    right = vocab_loss(bank, bank[ids], own, ids)
    wrong = vocab_loss(bank, bank[torch.tensor([4, 9])], own, ids)
    assert right.item() < 0.5 < wrong.item()
    stale = bank.clone()
    stale[ids] = -stale[ids]  # the bank's own rows are never read
    assert torch.allclose(vocab_loss(stale, bank[ids], own, ids), right)
    right.backward()
    assert own.grad is not None and own.grad.abs().sum() > 0


def test_a_run_with_the_vocab_loss_logs_it_and_trains(tmp_path: Path) -> None:
    from dataclasses import replace

    out = tmp_path / "run"
    res = train(replace(_cfg(out, 2), vocab_loss=0.5))
    assert np.isfinite(res["val_token_acc"])
    log = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert len(steps) == 2 and all(np.isfinite(r["vocab"]) and r["vocab"] > 0 for r in steps)
    assert log[0]["config"]["vocab_loss"] == 0.5
