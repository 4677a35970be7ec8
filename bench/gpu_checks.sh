#!/usr/bin/env bash
# The GPU checks of pretraining speed and reduced precision in one script, for a machine lent for a few minutes:
#   1. reduced-precision quality on the GPU (bench_precision_quality.py: fp32, bf16, fp16),
#   2. five-pipe throughput vs the four HF pipelines, both on the GPU (bench_pipes.py),
#   3. BERT-base bf16 pretraining tokens/s and MFU, ours vs HF Trainer (bench_pretrain.py).
#
#   bash bench/gpu_checks.sh PIPELINE OUT_DIR [smoke|full]
#
# PIPELINE: the trained five-pipe pipeline (BENCHMARKS.md, "Reduced precision"); its transformer
# is also exported as the HF checkpoint both sides of bench_pipes.py start from. Data: $SPACY_MLM_DATA_DIR
# or ../shared/data. `smoke` runs each check on a few examples/steps (a minute), `full` the real sizes.
# Each check runs under `timeout`, so one that hangs does not take the others' time.
set -u
PIPE=$1
OUT=$2
MODE=${3:-full}
GPU=${GPU_ID:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/env.log" 2>&1
python3 -c "import sys, torch, spacy, thinc, transformers, thinc.compat as c
print(sys.version.split()[0], 'torch', torch.__version__, 'spacy', spacy.__version__, 'thinc', thinc.__version__,
      'transformers', transformers.__version__, 'cupy gpu', c.has_cupy_gpu, torch.cuda.get_device_name($GPU))" >> "$OUT/env.log" 2>&1
cat "$OUT/env.log"

CKPT=${TMPDIR:-/tmp}/gpu_checks_ckpt
python3 - "$PIPE" "$CKPT" <<'PY' 2>&1 | tail -3
import sys
import spacy
trf = spacy.load(sys.argv[1]).get_pipe("transformer").model
trf.transformer.save_pretrained(sys.argv[2])
trf.tokenizer.save_pretrained(sys.argv[2])
print("checkpoint", sys.argv[2])
PY

if [ "$MODE" = smoke ]; then
  Q="--limit 20 --dtypes fp32,fp16"; P="--n-docs 40 --rounds 1 --dtypes fp32,fp16"
  T="--steps 2 --skip-steps 1 --rounds 1 --batch 8 --seq-lengths 128"; TQ=120; TP=120; TT=120
else
  Q="--dtypes fp32,bf16,fp16"; P="--n-docs 1000 --rounds 5 --dtypes fp32,bf16,fp16"
  T="--steps 20 --skip-steps 3 --rounds 2 --batch 64 --seq-lengths 128,512"; TQ=150; TP=200; TT=200
fi
timeout $TQ python3 "$HERE/bench_precision_quality.py" "$PIPE" --gpu-id "$GPU" $Q --out "$OUT/quality.jsonl" \
  > "$OUT/quality.log" 2>&1; echo "quality rc $?"; tail -2 "$OUT/quality.log"
timeout $TP python3 "$HERE/bench_pipes.py" --gpu-id "$GPU" --checkpoint "$CKPT" $P --out "$OUT/pipes.jsonl" \
  > "$OUT/pipes.log" 2>&1; echo "pipes rc $?"; tail -2 "$OUT/pipes.log"
timeout $TT python3 "$HERE/bench_pretrain.py" --gpu-id "$GPU" --size base --base-model "$CKPT" $T --out "$OUT/pretrain.jsonl" \
  > "$OUT/pretrain.log" 2>&1; echo "pretrain rc $?"; tail -2 "$OUT/pretrain.log"
