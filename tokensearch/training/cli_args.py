"""argparse wiring for ``tokensearch train`` and ``tokensearch finetune`` (the CLI only calls these).

    p = sub.add_parser("train", help=...);    add_train_arguments(p);    p.set_defaults(func=run_train)
    p = sub.add_parser("finetune", help=...); add_finetune_arguments(p); p.set_defaults(func=run_finetune)

Training imports torch and the data engine lazily, inside ``run_*``.
"""

from __future__ import annotations

import argparse

TRAIN_HELP = "train the embedded mini model from scratch on synthetic documents (CPU or a CUDA GPU, resumable)"
FINETUNE_HELP = "fine-tune the mini model on a folder of born-digital PDFs (their text layer gives the labels)"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        required=True,
        help="run directory: train.log, ckpt.pt, mini.safetensors, "
        "tokenizer.json (use the result with --model mini:OUT)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--workers", type=int, default=1, help="data-generating worker processes (default 1)")
    p.add_argument("--batch-size", type=int, default=None, help="page crops per step (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--ckpt-minutes", type=float, default=4.0, help="checkpoint interval (default 4 min)")
    p.add_argument(
        "--blocks",
        type=int,
        default=None,
        help="context blocks at 1/8 (grows --init's model: new blocks start as identities)",
    )
    p.add_argument("--quarter-blocks", type=int, default=None, help="residual blocks at 1/4 (grows as --blocks)")
    p.add_argument(
        "--widths",
        type=int,
        nargs=3,
        default=None,
        metavar=("STEM", "QUARTER", "EIGHTH"),
        help="channels of the vision net at 1/4 (stem, conv) and 1/8 (from scratch only)",
    )
    p.add_argument(
        "--receipt-fraction",
        type=float,
        default=0.0,
        help="share of pages that are synthetic till receipts, invoices and forms (thermal and "
        "dot-matrix print; default 0: the shipped recipe's data)",
    )
    p.add_argument(
        "--precision",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="vision net precision in training (auto: bf16 on a CUDA GPU and where the CPU computes it natively)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="where the model trains: cpu (default), cuda or cuda:N "
        "(pages are still rendered by the --workers processes on the CPU)",
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="stop after this many seconds (the cosine "
        "schedule then ends with the budget, or with --steps if that comes first), validating, "
        "saving the best weights and a checkpoint",
    )
    p.add_argument(
        "--crop", type=int, nargs=2, default=None, metavar=("H", "W"), help="page crop size in pixels (default 224 384)"
    )
    p.add_argument(
        "--reuse",
        type=int,
        default=None,
        help="crops drawn per newly rendered page (default 12; more when rendering limits the step rate)",
    )
    p.add_argument(
        "--buffer", type=int, default=None, help="rendered pages each worker keeps for cropping (default 16)"
    )
    p.add_argument("--val-crops", type=int, default=None, help="held-out validation crops (default 40)")
    p.add_argument(
        "--hard-negatives",
        type=int,
        default=0,
        help="per token of a batch, strings its cells must read worse than it: its pieces, other case, one "
        "letter or digit changed (default 0: off, the shipped recipe)",
    )
    p.add_argument(
        "--vocab-loss",
        type=float,
        default=0.0,
        help="weight of a cross-entropy of each token's pooled cells over the whole vocabulary, the search's "
        "vocabulary check as a loss (default 0: off)",
    )
    p.add_argument(
        "--val-init", action="store_true", help="validate the starting weights first (a baseline line in train.log)"
    )


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--steps", type=int, default=4500, help="optimiser steps (default 4500: ~1.5-3 h on 2 cores)")
    p.add_argument("--init", default=None, help="start from these weights (dir or .safetensors) instead of random")
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument(
        "--pdf-dir",
        default=None,
        help="also train on these born-digital PDFs (text layer = labels; ~1 file in 10 held out for validation)",
    )
    p.add_argument(
        "--synth-fraction",
        type=float,
        default=0.5,
        help="share of synthetic pages when --pdf-dir is given (default 0.5)",
    )


def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pdf_dir", help="folder (searched recursively) of born-digital PDFs")
    _common(p)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--init", default=None, help="weights to start from (default: the shipped mini weights)")
    p.add_argument("--synth-fraction", type=float, default=0.3, help="share of synthetic pages (default 0.3)")
    p.add_argument("--val-every", type=int, default=250)


def _overrides(args: argparse.Namespace) -> dict:
    kw = {
        "resume": args.resume,
        "threads": args.threads,
        "workers": args.workers,
        "seed": args.seed,
        "ckpt_minutes": args.ckpt_minutes,
        "val_every": args.val_every,
        "precision": args.precision,
        "val_init": args.val_init,
    }
    if args.batch_size:
        kw["batch_size"] = args.batch_size
    if args.receipt_fraction:
        kw["receipt_fraction"] = args.receipt_fraction
    if args.hard_negatives:
        kw["hard_negatives"] = args.hard_negatives
    if args.vocab_loss:
        kw["vocab_loss"] = args.vocab_loss
    if args.crop:
        kw["crop_height"], kw["crop_width"] = args.crop
    kw.update(
        {
            k: v
            for k, v in (
                ("device", args.device),
                ("budget_s", args.budget_s),
                ("reuse", args.reuse),
                ("buffer", args.buffer),
                ("val_crops", args.val_crops),
            )
            if v is not None
        }
    )
    model = {
        k: v
        for k, v in (
            ("n_blocks", args.blocks),
            ("quarter_blocks", args.quarter_blocks),
            ("widths", tuple(args.widths) if args.widths else None),
        )
        if v is not None
    }
    if model:
        kw["model"] = model
    return kw


def run_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    kw = _overrides(args)
    if args.lr:
        kw["lr"] = args.lr
    if args.pdf_dir:
        kw.update(pdf_dir=args.pdf_dir, synth_fraction=args.synth_fraction)
    train(TrainConfig(out=args.out, steps=args.steps, init=args.init, **kw))
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from .train import finetune

    kw = _overrides(args)
    if args.lr:
        kw["lr"] = args.lr
    finetune(args.pdf_dir, out=args.out, steps=args.steps, init=args.init, synth_fraction=args.synth_fraction, **kw)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m tokensearch.training {train,finetune} ...`` (the same as the tokensearch sub-commands)."""
    ap = argparse.ArgumentParser(prog="python -m tokensearch.training")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train", help=TRAIN_HELP)
    add_train_arguments(p)
    p.set_defaults(func=run_train)
    p = sub.add_parser("finetune", help=FINETUNE_HELP)
    add_finetune_arguments(p)
    p.set_defaults(func=run_finetune)
    args = ap.parse_args(argv)
    return args.func(args)
