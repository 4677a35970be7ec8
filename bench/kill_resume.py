"""Kill `spacy-mlm pretrain` with SIGKILL many times and resume it (hardening).

    python bench/kill_resume.py --kills 50 [--seed 0] [--launcher fork|exec] [--out bench/results/kill_resume.json]

A tiny random BERT on a generated corpus (as in the tests), 33 steps, a checkpoint every 3
steps (each checkpoint write stretched by SPACY_MLM_TEST_CHECKPOINT_PAUSE so kills land inside
it). Each kill must be followed by a resume from the newest complete checkpoint, and every
finished run must end with the weights and metrics of an uninterrupted run. This runs the test
tests/test_pretrain_kill_resume.py::test_sigkill_and_resume_equals_uninterrupted under pytest
(its fixtures build the model and corpus) with more kills; `--launcher exec` starts every run
as a new `spacy-mlm` process (~5 s of imports each) instead of forking it from a process that
imported spacy_mlm once.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/test_pretrain_kill_resume.py::test_sigkill_and_resume_equals_uninterrupted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--launcher", choices=["fork", "exec"], default="fork")
    parser.add_argument("--pause", type=float, default=None, help="Seconds between the files of a checkpoint.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "kill_resume.json")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        env = {**os.environ, "SPACY_MLM_TEST_KILLS": str(args.kills), "SPACY_MLM_TEST_KILL_SEED": str(args.seed),
               "SPACY_MLM_TEST_KILL_LAUNCHER": args.launcher, "SPACY_MLM_TEST_KILL_REPORT": str(report_path),
               **({"SPACY_MLM_TEST_KILL_PAUSE": str(args.pause)} if args.pause is not None else {}),
               **({"SPACY_MLM_TEST_KILL_VERBOSE": "1"} if args.verbose else {})}
        cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST]
        rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        if not report_path.exists():
            sys.exit(f"The test wrote no report (pytest exit status {rc}): see its output above.")
        report = json.loads(report_path.read_text(encoding="utf8"))
    print(report.pop("summary"))
    for problem in report["problems"]:
        print("PROBLEM:", problem)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"command": " ".join(["python", "bench/kill_resume.py", *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d"),
              **report}
    args.out.write_text(json.dumps(result, indent=2), encoding="utf8")
    sys.exit(rc)


if __name__ == "__main__":
    main()
