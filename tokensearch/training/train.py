"""Train (or fine-tune) the mini model: ``train(TrainConfig(out=...))`` / ``finetune(pdf_dir, out=...)``.

Objective, in TokenOCR's spirit, for a batch of page crops with per-cell token labels:

- ``pool``: mean-pool the cells of each token instance, 1 - cos(pooled, token vector);
- ``cell``: per-cell BCE of ``s * cos(cell, token) + b`` against "this cell shows that token", over the
  tokens of the crop plus tokens of other crops as negatives (positives and negatives averaged apart);
- ``siglip``: sigmoid contrastive loss between pooled instances and the batch's token vectors;
- ``text``: BCE of the text logit against "cell shows some token";
- ``hard`` (``hard_negatives`` > 0): each pooled instance and each of its cells must read its token better than
  that token's hard negatives (``lookalikes.hard_negatives``: its pieces, other case, one letter or digit
  changed) — the in-batch negatives are other words, rarely these, and the search's vocabulary check
  loses a printed word whose cells read a piece of it (" Sign" for " Signature") about as well.
- ``vocab`` (``vocab_loss`` > 0): softmax cross-entropy of each pooled instance over the *whole* vocabulary
  (scale ``VOCAB_SCALE``) — the search's vocabulary check compares a word's pooled cells with all 6,000
  tokens, the other losses only with the batch's few hundred. The other tokens' vectors are a bank computed
  without gradient every ``VOCAB_REFRESH`` steps (all 6,000 through the composer cost twice a step); the
  composer learns from the positives only here, as in ``pool``.

Token vectors come from the character composer (trained jointly), so the model never needs a table.
Everything lives under ``out``: ``train.log`` (one JSON line per log/validation), ``ckpt.pt``
(resumable: model, optimiser, step, config; written every ``ckpt_minutes``), and the best model so far
by validation token accuracy (with ``receipt_fraction`` > 0: its mean with the accuracy on synthetic
receipt crops) as ``mini.safetensors`` + ``tokenizer.json`` (loadable as ``mini:OUT``).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..tokenocr_model.devices import resolve_device, resolve_dtype
from ..tokenocr_model.mini import MiniConfig, MiniModel, load_state, read_weights, save_weights
from ..tokenocr_model.mini_files import TOKENIZER_FILE, WEIGHTS_DIR, WEIGHTS_FILE
from ..tokenocr_model.mini_tokenizer import MiniTokenizer, piece_to_text
from . import lookalikes
from .data import CropStream, PageMix, PageSample, collate, random_crop


@dataclass
class TrainConfig:
    out: str
    steps: int = 4500
    batch_size: int = 8
    crop_height: int = 224
    crop_width: int = 384
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 200
    seed: int = 0
    threads: int = 2
    workers: int = 1
    log_every: int = 25
    val_every: int = 250
    val_crops: int = 40
    ckpt_minutes: float = 4.0
    resume: bool = False
    init: str | None = None  # weights dir/file to start from (fine-tuning); None = random init
    tokenizer: str | None = None  # tokenizer.json; None = the shipped one
    pdf_dir: str | None = None  # fine-tune: born-digital PDFs whose text layer gives the masks
    synth_fraction: float = 1.0  # share of synthetic pages when pdf_dir is set
    receipt_fraction: float = 0.0  # share of synthetic receipts, invoices and forms (.receipts) among all pages
    strength: float = 1.0  # augmentation strength
    reuse: int = 12  # crops drawn per newly rendered page
    buffer: int = 16  # rendered pages kept for cropping
    model: dict = field(default_factory=dict)  # MiniConfig overrides
    # vision forward/backward: auto (bf16 where the device has it natively) | float32 | bfloat16
    precision: str = "auto"
    device: str = "cpu"  # cpu | cuda[:N]: where the model trains (pages are rendered by the data workers on the CPU)
    budget_s: float | None = None  # wall-clock limit of the run; the cosine schedule then ends with it (see _lr)
    val_init: bool = False  # validate the starting weights first: the baseline the run must beat (logged only)
    hard_negatives: int = 0  # hard negatives per token of a batch (the ``hard`` loss; 0: off, the shipped recipe)
    vocab_loss: float = 0.0  # weight of the whole-vocabulary ``vocab`` loss (0: off)


# ------------------------------------------------------------------------------------------------------
# page sources (built inside each DataLoader worker)
# ------------------------------------------------------------------------------------------------------


class SynthSource:
    """Synthetic pages at a random resolution (text sizes vary with it)."""

    def __init__(self, tokenizer_path: str, seed: int, dpi_range: tuple[float, float] = (105, 215)):
        from .synth import DocumentSynth

        self.synth = DocumentSynth(MiniTokenizer.from_file(tokenizer_path), seed=seed)
        self.rng = random.Random(seed + 7)
        self.dpi_range = dpi_range

    def __call__(self) -> PageSample:
        while True:
            p = self.synth.page(dpi=self.rng.uniform(*self.dpi_range))
            if p.tokens:
                return PageSample.from_tokens(p.image, p.mask, p.tokens)


class ReceiptSource:
    """Synthetic till receipts, invoices and forms (:mod:`.receipts`), each at its kind's resolution."""

    def __init__(self, tokenizer_path: str, seed: int):
        from .receipts import ReceiptSynth

        self.synth = ReceiptSynth(MiniTokenizer.from_file(tokenizer_path), seed=seed)

    def __call__(self) -> PageSample:
        while True:
            p = self.synth.random_page()
            if p.tokens:
                return PageSample.from_tokens(p.image, p.mask, p.tokens)


class MixedSource:
    """PDF pages (see :mod:`.from_pdfs`) mixed with synthetic ones."""

    def __init__(self, tokenizer_path: str, pdf_dir: str, seed: int, synth_fraction: float):
        from .from_pdfs import PdfPages

        self.synth = SynthSource(tokenizer_path, seed)
        self.pdfs = PdfPages(pdf_dir, MiniTokenizer.from_file(tokenizer_path), seed=seed, split="train")
        self.rng = random.Random(seed + 11)
        self.synth_fraction = synth_fraction

    def __call__(self) -> PageSample:
        if self.rng.random() < self.synth_fraction:
            return self.synth()
        return self.pdfs()


class SourceFactory:
    def __init__(self, cfg: TrainConfig, tokenizer_path: str):
        self.cfg, self.tokenizer_path = cfg, tokenizer_path

    def __call__(self, seed: int):
        base: MixedSource | SynthSource
        if self.cfg.pdf_dir:
            base = MixedSource(self.tokenizer_path, self.cfg.pdf_dir, seed, self.cfg.synth_fraction)
        else:
            base = SynthSource(self.tokenizer_path, seed)
        rf = self.cfg.receipt_fraction
        if rf <= 0:  # (no extra draws: runs without receipts see exactly the pages they always did)
            return base
        return PageMix([(rf, ReceiptSource(self.tokenizer_path, seed + 13)), (1 - rf, base)], seed + 17)


# ------------------------------------------------------------------------------------------------------
# losses
# ------------------------------------------------------------------------------------------------------


def pool_instances(feats: torch.Tensor, labels: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of the unit cell vectors of each instance: feats (B, D, h, w), labels (B, h, w) -> (n, D)."""
    D = feats.shape[1]
    flat = feats.permute(0, 2, 3, 1).reshape(-1, D)  # (B*h*w, D)
    lab = labels.reshape(-1)
    keep = lab >= 0
    sums = torch.zeros(n, D, dtype=feats.dtype, device=feats.device).index_add_(0, lab[keep], flat[keep])
    cnt = torch.bincount(lab[keep], minlength=n).clamp(min=1).unsqueeze(1).to(feats.dtype)
    return sums / cnt  # (n, D)


def losses(
    model: MiniModel,
    batch: dict,
    pieces: list[str],
    amp: torch.dtype | None = None,
    hard_negatives: int = 0,
    vocab: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """TokenOCR-style losses of one batch; ``amp`` runs the vision net (nearly all the FLOPs) in that dtype;
    ``hard_negatives``: that many per token for the ``hard`` loss (0: no ``hard`` term); ``vocab``: the
    vocabulary's vectors (V, D), for the ``vocab`` term (None: no such term)."""
    x = batch["image"].float() / 255.0  # (B, 1, H, W)
    labels, ids = batch["labels"], batch["ids"]  # (B, h, w), (N,)
    with torch.autocast(x.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
        feats, text_logit = model.vision(x)  # (B, D, h, w), (B, h, w)
    if amp is not None:  # losses in float32, on unit vectors again after bf16 rounding
        feats, text_logit = F.normalize(feats.float(), dim=1), text_logit.float()
    B, D, h, w = feats.shape
    labels = labels[:, :h, :w]
    out: dict[str, torch.Tensor] = {}

    # text / background
    valid = labels != -2
    out["text"] = F.binary_cross_entropy_with_logits(text_logit[valid], (labels[valid] >= 0).float())
    if len(ids) == 0:
        zero = feats.sum() * 0
        out.update(pool=zero, siglip=zero, cell=zero)
        if hard_negatives:
            out["hard"] = zero
        if vocab is not None:
            out["vocab"] = zero
        return out

    uniq, inst_u = torch.unique(ids, return_inverse=True)  # (U,), (N,)
    texts = [piece_to_text(pieces[i]) for i in uniq.tolist()]
    vecs = model.composer(texts)  # (U, D) unit (one copy off a GPU)

    # pooled instance vs its token
    pooled = F.normalize(pool_instances(feats, labels, len(ids)), dim=-1)  # (N, D)
    out["pool"] = (1 - (pooled * vecs[inst_u]).sum(-1)).mean()

    # SigLIP: instances x unique tokens of the batch
    logits = pooled @ vecs.T * model.logit_scale.exp() + model.logit_bias  # (N, U)
    sign = (inst_u[:, None] == torch.arange(len(uniq), device=ids.device)[None, :]).float() * 2 - 1
    out["siglip"] = -F.logsigmoid(sign * logits).sum() / len(ids)

    # per-cell BCE: every non-ignored cell against every token of the batch (positives and negatives
    # averaged apart, so the rare positives weigh as much as the many negatives)
    cell_u = torch.full_like(labels, -1)
    lab_pos = labels >= 0
    cell_u[lab_pos] = inst_u[labels[lab_pos]]  # (B, h, w) unique-token index, -1 background
    ok = (labels != -2).reshape(-1)
    cells = feats.permute(0, 2, 3, 1).reshape(-1, D)[ok]  # (M, D)
    cu = cell_u.reshape(-1)[ok]  # (M,)
    lg = (cells @ vecs.T) * model.cell_scale.exp() + model.cell_bias  # (M, U)
    tgt = cu[:, None] == torch.arange(len(uniq), device=ids.device)[None, :]  # (M, U) bool
    bce = F.binary_cross_entropy_with_logits(lg, tgt.float(), reduction="none")
    n_pos = tgt.sum().clamp(min=1)
    n_neg = (~tgt).sum().clamp(min=1)
    pos_sum = (bce * tgt).sum()
    out["cell"] = pos_sum / n_pos + (bce.sum() - pos_sum) / n_neg
    if hard_negatives:
        out["hard"] = hard_loss(model, texts, vecs, pooled, inst_u, cells, cu, hard_negatives, int(ids.sum()))
    if vocab is not None:
        out["vocab"] = vocab_loss(vocab, pooled, vecs[inst_u], ids)
    return out


VOCAB_SCALE = 20.0  # softmax temperature 0.05 on cosines: a margin of ~0.1 over the runner-up costs little
VOCAB_REFRESH = 20  # steps between recomputing the vocabulary bank (the composer moves slowly)


def vocab_bank(model: MiniModel, pieces: list[str]) -> torch.Tensor:
    """Every vocabulary token's vector (V, D), without gradient: the ``vocab`` loss's negatives, and what
    validation retrieves tokens from."""
    texts = [piece_to_text(p) for p in pieces]
    with torch.no_grad():
        return torch.cat([model.composer(texts[i : i + 2048]) for i in range(0, len(texts), 2048)])


def vocab_loss(vocab: torch.Tensor, pooled: torch.Tensor, own: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of pooled instances (N, D) over the vocabulary bank (V, D); ``own`` (N, D) are their
    tokens' vectors with gradient, ``ids`` (N,) their vocabulary ids (their own, stale, rows are replaced)."""
    logits = pooled @ vocab.T  # (N, V)
    pos = (pooled * own).sum(-1)  # (N,): the own token's cosine, through the composer too
    logits = logits.scatter(1, ids[:, None], pos[:, None])
    return F.cross_entropy(VOCAB_SCALE * logits, ids)


HARD_SCALE = 16.0  # logistic loss on cos(token) - cos(hard negative) - margin, a soft hinge ~0.1 wide
HARD_MARGIN = 0.05
HARD_MAX = 256  # negatives a batch: the composer runs (forward and backward) on each


def hard_loss(
    model: MiniModel,
    texts: list[str],
    vecs: torch.Tensor,
    pooled: torch.Tensor,
    inst_u: torch.Tensor,
    cells: torch.Tensor,
    cu: torch.Tensor,
    n: int,
    seed: int,
) -> torch.Tensor:
    """Pooled instances (N, D) and labelled cells (M, D; ``cu`` -1 where background) against their token's
    hard negatives (strings equal to a token of the batch are left out: the other losses have them)."""
    rng = random.Random(seed)  # the batch's own draw: a resumed run sees the same negatives
    known = set(texts)
    neg_texts: list[str] = []
    owner: list[int] = []
    for u in rng.sample(range(len(texts)), len(texts)):
        if len(neg_texts) >= HARD_MAX:
            break
        for h in lookalikes.hard_negatives(texts[u], rng, n):
            if h not in known and len(neg_texts) < HARD_MAX:
                neg_texts.append(h)
                owner.append(u)
    if not neg_texts:
        return vecs.sum() * 0
    hv = model.composer(neg_texts)  # (H, D)
    own = torch.tensor(owner, device=vecs.device)

    def ranked(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        pos = (x * vecs[u]).sum(-1, keepdim=True)  # (n, 1)
        mine = u[:, None] == own[None, :]  # (n, H): the negatives of each row's own token
        gap = x @ hv.T - pos + HARD_MARGIN
        return (F.softplus(HARD_SCALE * gap) * mine).sum() / mine.sum().clamp(min=1)

    lab = cu >= 0
    return 0.5 * ranked(pooled, inst_u) + 0.5 * ranked(cells[lab], cu[lab])


LOSS_WEIGHTS = {"pool": 1.0, "siglip": 0.5, "cell": 1.0, "text": 0.5, "hard": 1.0}  # ``vocab``: the run's vocab_loss


# ------------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------------


def make_val_set(
    tokenizer_path: str, n: int, height: int, width: int, seed: int = 987_654, pdf_dir: str | None = None
) -> list[dict]:
    """Held-out crops (own seed, mild augmentation), deterministic: synthetic pages, or when fine-tuning
    on PDFs, half of them from the held-out PDF files (the real documents the run is meant to serve)."""
    synth = SynthSource(tokenizer_path, seed)
    real = None
    if pdf_dir:
        from .from_pdfs import PdfPages

        real = PdfPages(pdf_dir, MiniTokenizer.from_file(tokenizer_path), seed=seed, split="val")
    return _val_crops(lambda i: real() if real is not None and i % 8 >= 4 else synth(), n, height, width, seed)


def make_receipt_val_set(tokenizer_path: str, n: int, height: int, width: int, seed: int = 987_655) -> list[dict]:
    """Held-out crops of synthetic receipts, invoices and forms (:class:`ReceiptSource` with its own seed,
    never a real receipt), deterministic: validates what ``receipt_fraction`` trains for."""
    receipts = ReceiptSource(tokenizer_path, seed)
    return _val_crops(lambda i: receipts(), n, height, width, seed)


def _val_crops(next_page, n: int, height: int, width: int, seed: int) -> list[dict]:
    """``n`` crops with tokens, 4 per page, pages from ``next_page(crops so far)``."""
    rng = random.Random(seed)
    crops: list[dict] = []
    while len(crops) < n:
        page = next_page(len(crops))
        for _ in range(4):
            c = random_crop(page, rng, height, width, strength=0.5)
            if len(c["ids"]):
                crops.append(c)
    return crops[:n]


@torch.no_grad()
def validate(model: MiniModel, val: list[dict], pieces: list[str], batch_size: int = 8) -> dict[str, float]:
    """Token retrieval over the whole vocabulary: pooled instance (and each labelled cell) -> nearest token."""
    model.eval()
    vocab = vocab_bank(model, pieces)  # (V, D)
    hit = tot = chit = ctot = 0
    pos_cos, loss_sum, nb = [], 0.0, 0
    dev = model.logit_scale.device
    for i in range(0, len(val), batch_size):
        batch = to_device(collate(val[i : i + batch_size]), dev)
        ls = losses(model, batch, pieces)
        loss_sum += float(sum(LOSS_WEIGHTS[k] * v for k, v in ls.items()))
        nb += 1
        feats, _ = model.vision(batch["image"].float() / 255.0)
        B, D, h, w = feats.shape
        labels = batch["labels"][:, :h, :w]
        pooled = F.normalize(pool_instances(feats, labels, len(batch["ids"])), dim=-1)
        pred = (pooled @ vocab.T).argmax(1)
        hit += int((pred == batch["ids"]).sum())
        tot += len(batch["ids"])
        cells = feats.permute(0, 2, 3, 1)[labels >= 0]  # (M, D)
        cid = batch["ids"][labels[labels >= 0]]
        cpred = (cells @ vocab.T).argmax(1)
        chit += int((cpred == cid).sum())
        ctot += len(cid)
        pos_cos.append((pooled * vocab[batch["ids"]]).sum(-1))
    model.train()
    return {
        "val_token_acc": hit / max(1, tot),
        "val_cell_acc": chit / max(1, ctot),
        "val_pos_cos": float(torch.cat(pos_cos).mean()),
        "val_loss": loss_sum / max(1, nb),
    }


def validate_sets(model: MiniModel, vals: dict[str, list[dict]], pieces: list[str]) -> dict[str, float]:
    """:func:`validate` on each named set (``""``: the documents; ``"receipt"``: keys ``val_receipt_*``),
    plus ``val_score``, the mean token accuracy over the sets: what the best checkpoint is chosen by."""
    rec: dict[str, float] = {}
    accs = []
    for name, val in vals.items():
        res = validate(model, val, pieces)
        rec.update({k.replace("val_", f"val_{name}_") if name else k: v for k, v in res.items()})
        accs.append(res["val_token_acc"])
    rec["val_score"] = sum(accs) / len(accs)
    return rec


# ------------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------------

GROWABLE = ("n_blocks", "quarter_blocks")


def grow_state(model: MiniModel, state: dict[str, torch.Tensor], init_cfg: MiniConfig, source: str) -> list[str]:
    """Start a deeper model from a shallower one's weights (net2net-style): every key of ``state`` is
    copied (loudly, as :func:`load_state`), and the residual blocks that are new start as identities
    (their BatchNorm scale is zero), so the grown model computes exactly what the old one did.
    Only block counts may grow; returns the new keys."""
    changed = {f for f in asdict(init_cfg) if getattr(init_cfg, f) != getattr(model.cfg, f)}
    if not changed <= set(GROWABLE) or any(getattr(model.cfg, f) < getattr(init_cfg, f) for f in changed):
        raise ValueError(f"cannot grow {source}: only {', '.join(GROWABLE)} may increase (changed: {sorted(changed)})")
    own = model.state_dict()
    new = sorted(set(own) - set(state))
    new_prefixes = [f"vision.blocks.{i}." for i in range(init_cfg.n_blocks, model.cfg.n_blocks)] + [
        f"vision.quarter.{i}." for i in range(init_cfg.quarter_blocks, model.cfg.quarter_blocks)
    ]
    stray = [k for k in new if not k.startswith(tuple(new_prefixes))]
    if stray:
        raise ValueError(f"cannot grow {source}: keys missing from the file that are not new blocks: {stray[:10]}")
    load_state(model, {**{k: own[k] for k in new}, **state}, source)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.BatchNorm2d) and f"{name}.weight" in new:
                mod.weight.zero_()
    return new


def train_amp_dtype(precision: str, device: torch.device = torch.device("cpu")) -> torch.dtype | None:
    """Autocast dtype of the vision net in training (None = float32); ``auto`` follows the inference rule
    (bf16 on CUDA GPUs and on CPUs that compute it natively)."""
    dt = resolve_dtype(precision, device)
    return None if dt == torch.float32 else dt


def to_device(batch: dict, device: torch.device) -> dict:
    """A collated batch on ``device`` (unchanged on the CPU; from pinned memory, asynchronously, on a GPU)."""
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _lr(cfg: TrainConfig, step: int, elapsed_s: float = 0.0) -> float:
    """Linear warmup, then cosine down to 5 % of ``lr`` over ``steps`` — or over ``budget_s`` seconds when
    that comes first (a run on a lent machine ends at the bottom of its schedule whichever limit hits)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.budget_s:
        p = max(p, elapsed_s / cfg.budget_s)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def _log(path: Path, rec: dict) -> None:
    rec = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **rec}
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec), flush=True)


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns the last validation record."""
    if not 0.0 <= cfg.receipt_fraction <= 1.0:
        raise ValueError(f"receipt_fraction must be in [0, 1], got {cfg.receipt_fraction}")
    if cfg.pdf_dir:
        from .from_pdfs import find_pdfs

        find_pdfs(cfg.pdf_dir)  # refuses held-out evaluation data before anything is written
    t_start = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest kernels once
    tok_path = (
        Path(cfg.tokenizer)
        if cfg.tokenizer
        else (
            (
                Path(cfg.init)
                if cfg.init and Path(cfg.init).is_dir() and (Path(cfg.init) / TOKENIZER_FILE).is_file()
                else WEIGHTS_DIR
            )
            / TOKENIZER_FILE
        )
    )
    shutil.copyfile(tok_path, out / TOKENIZER_FILE)
    tok_path = out / TOKENIZER_FILE
    pieces = MiniTokenizer.from_file(tok_path).pieces()
    log_path = out / "train.log"
    ckpt_path = out / "ckpt.pt"

    torch.manual_seed(cfg.seed)
    step, best = 0, -1.0
    mcfg = MiniConfig.from_dict(cfg.model)
    init_extra: dict = {}
    if cfg.init:
        ip = Path(cfg.init)
        state, init_cfg, init_extra = read_weights(ip / WEIGHTS_FILE if ip.is_dir() else ip)
        mcfg = MiniConfig.from_dict({**asdict(init_cfg), **cfg.model})
    model = MiniModel(mcfg)
    if cfg.init:
        if mcfg == init_cfg:
            load_state(model, state, str(cfg.init))
        else:
            grown = grow_state(model, state, init_cfg, str(cfg.init))
            _log(log_path, {"event": "grown", "from": asdict(init_cfg), "new_keys": len(grown)})
    model.to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    if cfg.resume and not ckpt_path.is_file():
        _log(log_path, {"event": "resume requested but no checkpoint yet: starting from scratch"})
    if cfg.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, best = ck["step"], ck.get("best", -1.0)
        _log(log_path, {"event": "resume", "step": step, "best": best})
    else:
        _log(log_path, {"event": "start", "config": asdict(cfg), "model": asdict(mcfg)})

    def val_set(cache: Path, make) -> list[dict]:  # built once per run, then read back (resume)
        if cache.is_file():
            return torch.load(cache, weights_only=False)
        crops = make(str(tok_path), cfg.val_crops, cfg.crop_height, cfg.crop_width)
        torch.save(crops, cache)
        return crops

    vals = {"": val_set(out / "val.pt", lambda path, n, h, w: make_val_set(path, n, h, w, pdf_dir=cfg.pdf_dir))}
    if cfg.receipt_fraction > 0:  # a run that trains on receipts is also chosen by them
        vals["receipt"] = val_set(out / "val_receipts.pt", make_receipt_val_set)

    if cfg.val_init and step == 0:
        _log(log_path, {"event": "init_val", **{k: round(v, 4) for k, v in validate_sets(model, vals, pieces).items()}})

    # fresh data after a resume: the stream seed depends on the start step
    stream = CropStream(
        SourceFactory(cfg, str(tok_path)),
        seed=cfg.seed * 100_003 + step,
        height=cfg.crop_height,
        width=cfg.crop_width,
        strength=cfg.strength,
        reuse=cfg.reuse,
        buffer=cfg.buffer,
    )
    loader = DataLoader(
        stream,
        batch_size=cfg.batch_size,
        collate_fn=collate,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        prefetch_factor=4 if cfg.workers > 0 else None,
        pin_memory=device.type == "cuda",
    )

    def save_ckpt() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best": best, "config": asdict(cfg)},
            tmp,
        )
        tmp.replace(ckpt_path)

    amp = train_amp_dtype(cfg.precision, device)
    weights = {**LOSS_WEIGHTS, "vocab": cfg.vocab_loss}
    bank: torch.Tensor | None = None
    model.train()
    t_ckpt = t_log = time.time()
    agg: dict[str, float] = {}
    n_agg = 0
    wait = 0.0  # seconds spent waiting for the data workers since the last log line
    last_val: dict = {}
    it = iter(loader)
    done = step >= cfg.steps
    while not done:
        t_wait = time.time()
        batch = to_device(next(it), device)
        wait += time.time() - t_wait
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step, time.time() - t_start)
        if cfg.vocab_loss > 0 and (bank is None or step % VOCAB_REFRESH == 0):
            bank = vocab_bank(model, pieces)
        ls = losses(model, batch, pieces, amp, cfg.hard_negatives, vocab=bank)
        loss = cast(torch.Tensor, sum(weights[k] * v for k, v in ls.items()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        step += 1
        for k, v in ls.items():
            agg[k] = agg.get(k, 0.0) + float(v.detach())
        agg["loss"] = agg.get("loss", 0.0) + float(loss.detach())
        n_agg += 1
        # the last step: the step count, or the time budget (the rest of it is kept for this validation)
        done = step >= cfg.steps or bool(cfg.budget_s and time.time() - t_start >= cfg.budget_s)
        if step % cfg.log_every == 0 or done:
            now = time.time()
            _log(
                log_path,
                {
                    "step": step,
                    "lr": round(_lr(cfg, step, now - t_start), 6),
                    **{k: round(v / n_agg, 4) for k, v in agg.items()},
                    "s_per_step": round((now - t_log) / n_agg, 3),
                    "data_wait": round(wait / max(1e-9, now - t_log), 3),
                },
            )  # share of the time
            agg, n_agg, t_log, wait = {}, 0, now, 0.0
        if step % cfg.val_every == 0 or done:
            last_val = validate_sets(model, vals, pieces)
            improved = last_val["val_score"] > best
            if improved:
                best = last_val["val_score"]
                extra = {
                    **{k: v for k, v in init_extra.items() if k == "threshold"},
                    "trained_steps": step,
                    **{k: round(v, 4) for k, v in last_val.items()},
                }
                save_weights(model, out / WEIGHTS_FILE, extra=extra)
            _log(
                log_path,
                {
                    "step": step,
                    **{k: round(v, 4) for k, v in last_val.items()},
                    "best": round(best, 4),
                    "saved": improved,
                },
            )
        if time.time() - t_ckpt > cfg.ckpt_minutes * 60 or done:
            save_ckpt()
            t_ckpt = time.time()
    return last_val


def finetune(
    pdf_dir: str,
    out: str,
    steps: int = 1500,
    init: str | None = None,
    lr: float = 5e-4,
    synth_fraction: float = 0.3,
    **kw,
) -> dict:
    """Adapt the model to a folder of born-digital PDFs (their text layer gives the token masks).

    Starts from ``init`` (a weights dir; default: the shipped weights), keeps some synthetic pages so
    the model does not forget, writes to ``out`` like :func:`train` (use it as ``--model mini:OUT``).
    """
    init = init or str(WEIGHTS_DIR)
    cfg = TrainConfig(
        out=out,
        steps=steps,
        init=init,
        lr=lr,
        warmup=min(100, steps // 10 + 1),
        pdf_dir=pdf_dir,
        synth_fraction=synth_fraction,
        **kw,
    )
    return train(cfg)
