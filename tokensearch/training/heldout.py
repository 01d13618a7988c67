"""Evaluation data that training and calibration must never see, and the check that refuses it.

The model is measured on pages it has not seen (issue 21, docs/training-data.md): everything under
``shared/bench`` (the benchmark pages, the SROIE receipts), and five Debian packages whose PDFs are
held out for evaluation. Training data are folders of PDFs a person points the trainer at, so a
held-out file could slip in unnoticed (copied into the folder, renamed by a fetch script); every PDF
folder read by training or calibration goes through :func:`check_not_held_out`, which fails loudly.

A file is held out when its resolved path lies under a ``shared/bench`` folder, when its path shows a
held-out package's install location or package name, or when its name and size are those of a PDF
of those packages (Debian 12 versions), with or without the ``<8 hex>_`` prefix that
``scripts/train_shipped.sh`` gives copied files.
"""

from __future__ import annotations

import re
from pathlib import Path

HELD_OUT_PACKAGES = ("auto-multiple-choice-doc-pdf", "octave-doc", "camlidl-doc", "r-cran-sandwich", "r-cran-zoo")

# where those packages install their PDFs
HELD_OUT_DIRS = (
    "usr/share/doc/auto-multiple-choice",
    "usr/share/doc/octave",
    "usr/share/doc/camlidl",
    "site-library/sandwich",
    "site-library/zoo",
)

# (file name, size in bytes) of every PDF in the Debian 12 packages (auto-multiple-choice-doc-pdf 1.6.0-1,
# octave-doc 7.3.0-2, camlidl-doc 1.04-5, r-cran-sandwich 3.0-2-1, r-cran-zoo 1.8-11-1)
HELD_OUT_FILES = frozenset(
    {
        ("auto-multiple-choice.en.pdf", 551421),
        ("auto-multiple-choice.fr.pdf", 561556),
        ("auto-multiple-choice.ja.pdf", 781879),
        ("automultiplechoice.pdf", 700515),
        ("sample-amc.pdf", 168684),
        ("sample-plain.pdf", 132167),
        ("sample-separate.pdf", 238167),
        ("camlidl-1.04.doc.pdf", 192532),
        ("liboctave.pdf", 291131),
        ("octave.pdf", 4707275),
        ("refcard-a4.pdf", 129539),
        ("refcard-legal.pdf", 129649),
        ("refcard-letter.pdf", 129777),
        ("sandwich-CL.pdf", 307661),
        ("sandwich-OOP.pdf", 128829),
        ("sandwich.pdf", 181479),
        ("zoo-design.pdf", 34380),
        ("zoo-faq.pdf", 89878),
        ("zoo-quickref.pdf", 66945),
        ("zoo-read.pdf", 65599),
        ("zoo.pdf", 199443),
    }
)

_COPY_PREFIX = re.compile(r"^[0-9a-f]{8}_")


class HeldOutDataError(ValueError):
    """Training or calibration was pointed at evaluation data."""


def held_out_reason(path: str | Path) -> str | None:
    """Why ``path`` is held-out evaluation data, or None when it is not."""
    p = Path(path).resolve()
    parts = p.parts
    if any(a == "shared" and b == "bench" for a, b in zip(parts, parts[1:])):
        return "it lies under shared/bench (the benchmark, SROIE receipts included)"
    posix = p.as_posix()
    for d in HELD_OUT_DIRS:
        if f"/{d}/" in posix or posix.endswith(f"/{d}"):
            return f"it lies under {d}/, where a held-out Debian package installs its PDFs"
    for pkg in HELD_OUT_PACKAGES:
        if any(part == pkg or part.startswith(f"{pkg}_") for part in parts):
            return f"its path names the held-out Debian package {pkg}"
    if p.is_file():
        name = _COPY_PREFIX.sub("", p.name)
        if (name, p.stat().st_size) in HELD_OUT_FILES:
            return f"it is {name} of a held-out Debian package (same name and size)"
    return None


def check_not_held_out(folder: str | Path, files: list[Path] | None = None) -> None:
    """Raise :class:`HeldOutDataError` if ``folder`` or any of ``files`` is held-out evaluation data."""
    for f in [Path(folder), *(files or [])]:
        why = held_out_reason(f)
        if why:
            raise HeldOutDataError(
                f"refusing to train or calibrate on {f}: {why}. Held out for evaluation are everything under "
                f"shared/bench (SROIE receipts included) and the PDFs of the Debian packages "
                f"{', '.join(HELD_OUT_PACKAGES)} (docs/training-data.md); take these files out of the PDF folder."
            )
