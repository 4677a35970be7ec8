"""Run a spaCy project workflow step by step (forced), time each step, and keep its metrics.

    python bench/time_workflow.py real [--project project] [--out bench/results/real_workflow.jsonl] \
        [--vars.NAME VALUE ...]

Each step runs as `python -m spacy project run STEP PROJECT --force [--vars...]`, so the total is the
workflow's wall time from scratch (downloads aside). The JSON files under the project's
metrics/<workflow> folder (or metrics/ for `all`) are copied into the result row.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import srsly


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow")
    parser.add_argument("--project", type=Path, default=Path(__file__).parent.parent / "project")
    parser.add_argument("--out", type=Path, default=None, help="append the result row here (JSONL)")
    args, overrides = parser.parse_known_args()
    steps = srsly.read_yaml(args.project / "project.yml")["workflows"][args.workflow]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=args.project).stdout.strip()
    seconds = {}
    for step in steps:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "spacy", "project", "run", step, str(args.project), "--force",
                        *overrides], check=True)
        seconds[step] = round(time.perf_counter() - start, 1)
        print(f"[time_workflow] {step}: {seconds[step]} s", file=sys.stderr, flush=True)
    metrics_dir = args.project / "metrics" / ("" if args.workflow == "all" else args.workflow)
    metrics = {path.stem: srsly.read_json(path) for path in sorted(metrics_dir.glob("*.json"))}
    row = {"workflow": args.workflow, "commit": commit, "overrides": overrides, "cpu_count": os.cpu_count(),
           "machine": platform.processor() or platform.machine(), "seconds": seconds,
           "total_s": round(sum(seconds.values()), 1), "metrics": metrics}
    print(json.dumps({k: v for k, v in row.items() if k != "metrics"}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a", encoding="utf8") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
