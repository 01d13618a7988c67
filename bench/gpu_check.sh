#!/usr/bin/env bash
# bench/gpu_check.py on a lent GPU machine in ONE device command (issue 16, point 4).
#
#   bash bench/gpu_check.sh wheels        here, once per checkout: the Python packages the H200 image lacks
#                                         (tokensearch's runtime dependencies minus what the image has),
#                                         as wheels for its Python 3.12 in .whl/ (git-ignored, ~52 MB)
#   bash bench/gpu_check.sh run [ARGS]    there, through the device tool with carry [".whl"]: installs the
#                                         wheels into /tmp/site (nothing can be downloaded there), then
#                                         python3 bench/gpu_check.py --out "$OUT" ARGS, its log in $OUT too
#
# The device command (timeout 420 s leaves the install, the ending and a rerun in 15 minutes of device time):
#   run(command="bash bench/gpu_check.sh run --budget-s 300", carry=[".whl"], timeout_s=420)
# The image has torch, numpy, scipy, pillow, safetensors, sentencepiece, protobuf, tokenizers, threadpoolctl,
# tqdm (KINDS.md, 2026-11); the versions below are those of the development venv on 2026-12-02. faiss-gpu
# is not carried: its CUDA 12 wheels need ~1 GB of cuBLAS/cudart wheels, over the 64 MiB a call may carry.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(faiss-cpu==1.15.1 pymupdf==1.28.2 sqlalchemy==2.1.9 greenlet==3.5.6 pydantic==2.14.4
        pydantic-core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4 typing-inspection==0.4.5
        annotated-types==0.8.0 typing-extensions==4.16.0)

case "${1:-}" in
  wheels)
    rm -rf .whl
    "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "${WHEELS[@]}"
    du -sh .whl
    ;;
  run)
    shift
    : "${OUT:?run this on the device machine, where \$OUT is set}"
    ls .whl/*.whl >/dev/null 2>&1 || { echo "no wheels in .whl/: run 'bash bench/gpu_check.sh wheels' here first" >&2; exit 2; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 bench/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
    ;;
  *)
    echo "usage: bash bench/gpu_check.sh wheels | run [gpu_check.py args]" >&2
    exit 2
    ;;
esac
