#!/usr/bin/env bash
# On a CUDA machine: the sampler benchmark in bf16 on random Qwen2 models of Qwen2.5-0.5B and
# -1.5B shapes (vocabulary 151,936, grouped-query attention): (a) every probe, (b) no probes,
# (c) Hugging Face generate with sdpa, (r) the bf16 matmul roofline, and the context growth of
# a decode step, as ratios. Needs a CUDA build of the pinned torch in the venv; about 5 minutes
# (building and saving the random 1.5B checkpoint on CPU is the slow part).
#
#   bash benchmarks/gpu.sh            # PYTHON=/path/to/python to choose the interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else
    'benchmarks/gpu.sh: no CUDA device (torch ' + torch.__version__ + ')')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
timeout 600 "$PYTHON" benchmarks/sampler.py --device cuda --dtype bfloat16 --sizes 0.5B 1.5B \
    --repeats 3
