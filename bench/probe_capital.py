"""Does domain-adaptive MLM pretraining make MiniLM fill "The capital of France is [MASK]." with paris?

all-MiniLM-L6-v2 ships without an MLM head, so its head is trained from scratch by
`spacy-mlm pretrain`. This script runs that pretraining on a text for N steps and prints the
fill-mask top-k (HF `pipeline("fill-mask")` on the saved checkpoint) for capital probes whose
facts are not in the demo text. One JSONL row per run.

    python bench/probe_capital.py --text ../shared/data/mlm/wikitext-2/valid.txt --steps 250
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from common import append_jsonl, minilm_checkpoint

ROOT = Path(__file__).resolve().parent.parent
PROBES = [
    ("The capital of France is [MASK] .", "paris"),
    ("The capital of Japan is [MASK] .", "tokyo"),
    ("The capital of Italy is [MASK] .", "rome"),
    ("Paris is the capital of [MASK] .", "france"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", default=None, help="HF checkpoint (default: installed MiniLM)")
    ap.add_argument("--text", required=True, help="raw text, one doc per line")
    ap.add_argument("--dev-text", default=None, help="held-out text (default: every 50th line)")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--workdir", default="/tmp/probe_capital")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "probe_capital.jsonl"))
    args = ap.parse_args()
    base = args.base_model or str(minilm_checkpoint())
    out_dir = Path(args.workdir) / f"steps{args.steps}_lr{args.lr}"
    cmd = [
        sys.executable, "-m", "spacy_mlm", "pretrain", str(ROOT / "configs" / "pretrain.cfg"), str(out_dir),
        "--force", "--paths.train", args.text, "--paths.base_model", base,
        "--training.max_steps", str(args.steps), "--training.batch_tokens", str(args.batch_tokens),
        "--training.learning_rate", str(args.lr), "--training.warmup_steps", str(max(1, args.steps // 10)),
        "--training.eval_frequency", str(args.steps), "--training.checkpoint_frequency", str(args.steps),
        "--logging.progress_bar", "false",
    ]
    if args.dev_text:
        cmd += ["--paths.dev", args.dev_text]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - start

    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(out_dir / "final"), top_k=args.top_k)
    probes = []
    for sentence, expected in PROBES:
        top = [p["token_str"].strip() for p in fill(sentence)]
        probes.append({"sentence": sentence, "expected": expected, "top": top, "hit": expected in top})
        print(f"{sentence:40} {expected:7} {'HIT ' if expected in top else 'miss'} {top}")
    append_jsonl(args.out, {
        "bench": "probe_capital", "base_model": base, "text": args.text, "steps": args.steps, "lr": args.lr,
        "batch_tokens": args.batch_tokens, "seconds": round(seconds, 1), "probes": probes,
        "command": " ".join(["python", "bench/probe_capital.py", *sys.argv[1:]]),
    })


if __name__ == "__main__":
    main()
