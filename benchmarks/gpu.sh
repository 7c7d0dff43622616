#!/usr/bin/env bash
# On a CUDA machine:
# 1. the sampler benchmark in bf16 on random Qwen2 models of Qwen2.5-0.5B and -1.5B shapes
#    (vocabulary 151,936, grouped-query attention): (a) every probe, (b) no probes, (c) Hugging
#    Face generate with sdpa, (r) the bf16 matmul roofline, and the context growth of a decode
#    step, as ratios;
# 2. the paper plan (`rsp-probe reproduce --plan paper`) at a small --limit on a random
#    Qwen2.5-0.5B-shaped model: the dry run's estimate against the measured time, appended to
#    benchmarks/RESULTS.md (MODEL=... DATASET=... to use a cached model and benchmark).
# Needs a CUDA build of the pinned torch in the venv; about 10 minutes. Without a GPU it says
# so and exits 0.
#
#   bash benchmarks/gpu.sh            # PYTHON=/path/to/python to choose the interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "benchmarks/gpu.sh: no CUDA device here ($("$PYTHON" -c 'import torch; print("torch", torch.__version__)')); nothing measured"
    exit 0
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
timeout 600 "$PYTHON" benchmarks/sampler.py --device cuda --dtype bfloat16 --sizes 0.5B 1.5B \
    --repeats 3
timeout 900 "$PYTHON" benchmarks/paper_plan.py --limit "${LIMIT:-2}" \
    --max-new-tokens "${MAX_NEW_TOKENS:-512}" ${MODEL:+--model "$MODEL"} \
    ${DATASET:+--dataset "$DATASET"}
