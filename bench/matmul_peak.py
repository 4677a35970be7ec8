"""The machine's matrix-product peak per precision on the given threads (the denominator of every
FLOP-utilisation figure), and whether the CPU has native bf16 (AVX512_BF16 / AMX).

    python bench/matmul_peak.py --threads 2 --out bench/results/matmul_peak.jsonl

Median of --rounds timed products of two n x n matrices after one warm-up product.
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from common import append_jsonl

from spacy_mlm.pretrain.device import cpu_flags


def peak(dtype: torch.dtype, n: int, rounds: int) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    row = {
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "threads": args.threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
        "n": args.n,
        # bf16 without native support is emulated and can be orders of magnitude slower: fewer rounds.
        "gflops_fp32": round(peak(torch.float32, args.n, args.rounds), 1),
        "gflops_bf16": round(peak(torch.bfloat16, args.n if "avx512_bf16" in flags or "amx_bf16" in flags else 512, 1), 2),
    }
    print(json.dumps(row))
    append_jsonl(args.out, row)


if __name__ == "__main__":
    main()
