#!/usr/bin/env bash
# The reduced-precision speed rows on a lent GPU machine, no trained pipeline needed (speed does not depend
# on the weights; the quality rows are bench_precision_quality.py's, in gpu_checks.sh):
#   1. the host CPU, 2 torch threads: five-pipe pipeline and raw encoder in fp32, int8, bf16
#      (bench_pipes.py --precision-only): the CPU goals assume AVX512-VNNI/BF16 and AMX, which
#      the GPU machines' Xeons have and this project's 2-core machines do not;
#   2. the GPU: five pipes vs the four HF pipelines, decomposed, fp32/bf16/fp16 (bench_pipes.py).
#
#   bash bench/throughput_checks.sh BASE OUT_DIR [smoke|full]
#
# BASE: an HF checkpoint folder; its config and tokenizer are enough (--random-weights: seeded
# random MiniLM-shaped weights). Data: $SPACY_MLM_DATA_DIR or ../shared/data (SST-2 and WNUT-17
# train files). Each step runs under `timeout`, so a hung one does not take the other's time.
set -u
BASE=$1
OUT=$2
MODE=${3:-full}
GPU=${GPU_ID:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  lscpu | grep -E "Model name|^CPU\(s\)"
  echo "flags: $(grep -o -w -E 'avx512f|avx512_vnni|avx512_bf16|amx_bf16|amx_int8|avx_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  python3 -c "import sys, torch, spacy, thinc, transformers, spacy_mlm
print(sys.version.split()[0], 'torch', torch.__version__, 'spacy', spacy.__version__, 'thinc', thinc.__version__,
      'transformers', transformers.__version__, 'spacy_mlm', spacy_mlm.__file__)"
} > "$OUT/env.log" 2>&1
cat "$OUT/env.log"

if [ "$MODE" = smoke ]; then
  C="--n-docs 40 --rounds 1"; G="--n-docs 40 --rounds 1"; TC=150; TG=150
else
  C="--n-docs 400 --rounds 5"; G="--n-docs 1000 --rounds 5"; TC=260; TG=260
fi
timeout $TC python3 "$HERE/bench_pipes.py" --precision-only --threads 2 --dtypes fp32,int8,bf16 $C \
  --checkpoint "$BASE" --random-weights --out "$OUT/cpu_precision.jsonl" > "$OUT/cpu_precision.log" 2>&1
echo "cpu precision rc $?"; grep -A 4 '"speedup_vs_fp32_pipeline"\|"transformer_overhead_vs_hf"' "$OUT/cpu_precision.log" | head -12
timeout $TG python3 "$HERE/bench_pipes.py" --gpu-id "$GPU" --dtypes fp32,bf16,fp16 $G \
  --checkpoint "$BASE" --random-weights --out "$OUT/gpu_pipes.jsonl" > "$OUT/gpu_pipes.log" 2>&1
echo "gpu pipes rc $?"; grep -A 14 '"median_seconds"' "$OUT/gpu_pipes.log" | head -16
