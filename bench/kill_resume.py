"""Kill `spacy-mlm pretrain` with SIGKILL many times and resume it (issue 6, hardening).

    python bench/kill_resume.py --kills 50 [--seed 0] [--launcher fork|exec] [--out bench/results/kill_resume.json]

A tiny random BERT on a generated corpus (as in the tests), 33 steps, a checkpoint every 3
steps (each checkpoint write stretched by SPACY_MLM_TEST_CHECKPOINT_PAUSE so kills land inside
it). Each kill must be followed by a resume from the newest complete checkpoint, and every
finished run must end with the weights and metrics of an uninterrupted run. The harness is
tests/kill_harness.py; `--launcher exec` starts every run as a new `spacy-mlm` process
(~5 s of imports each) instead of forking it from a process that imported spacy_mlm once.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.kill_harness import PAUSE, run_kill_chain  # noqa: E402
from tests.pretrain_fixtures import sentences, write_lines  # noqa: E402


def build_inputs(root: Path):
    from spacy_mlm.pretrain.init_model import init_model
    from spacy_mlm.pretrain.tokenizer import train_tokenizer

    train = write_lines(root / "train.txt", sentences(300, seed=1))
    dev = write_lines(root / "dev.txt", sentences(30, seed=2))
    train_tokenizer(train.read_text().splitlines(), root / "tok", vocab_size=120, kind="wordpiece")
    init_model(root / "bert", root / "tok", arch="bert", size="tiny", max_length=64)
    return train, dev, root / "bert"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--launcher", choices=["fork", "exec"], default="fork")
    parser.add_argument("--pause", type=float, default=PAUSE, help="Seconds between the files of a checkpoint.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "kill_resume.json")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train, dev, model = build_inputs(root)
        report = run_kill_chain(root, train, dev, model, kills=args.kills, seed=args.seed, pause=args.pause,
                                launcher=args.launcher, verbose=args.verbose)
    print(report.summary())
    for problem in report.problems:
        print("PROBLEM:", problem)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"command": " ".join(["python", "bench/kill_resume.py", *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d"),
              **{k: v for k, v in vars(report).items()}}
    args.out.write_text(json.dumps(result, indent=2), encoding="utf8")
    sys.exit(1 if report.problems or report.survived != report.tried else 0)


if __name__ == "__main__":
    main()
