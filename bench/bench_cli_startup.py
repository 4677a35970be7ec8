"""`python -m spacy --help` with spacy-mlm installed vs without it, interleaved (A/B/A/B).

spaCy imports every `spacy_cli` entry point when its CLI starts, so an installed plugin adds its
import time to every spaCy command. "Without" hides spacy-mlm's install metadata (dist-info and
editable hook) in the same venv for that run only, so both sides use the same interpreter and
packages; the files are put back afterwards, also on error.

    python bench/bench_cli_startup.py --rounds 7 --out bench/results/cli_startup.jsonl
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time
from contextlib import contextmanager
from pathlib import Path

from common import append_jsonl

COMMAND = [sys.executable, "-m", "spacy", "--help"]


@contextmanager
def spacy_mlm_hidden():
    site = Path(sysconfig.get_paths()["purelib"])
    moved = []
    try:
        for path in site.glob("*spacy_mlm*"):
            hidden = path.with_name(path.name + ".hidden")
            path.rename(hidden)
            moved.append((hidden, path))
        yield
    finally:
        for hidden, path in moved:
            hidden.rename(path)


def seconds(cwd: str) -> float:
    start = time.perf_counter()
    out = subprocess.run(COMMAND, capture_output=True, text=True, cwd=cwd, check=True).stdout
    elapsed = time.perf_counter() - start
    return elapsed, " mlm " in out or "\n  mlm" in out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cwd = os.path.expanduser("~")  # not the repo: its spacy_mlm/ folder would be importable from cwd
    seconds(cwd)  # warm-up: file cache
    with_mlm, without = [], []
    for _ in range(args.rounds):
        t, listed = seconds(cwd)
        assert listed, "spacy --help does not list the mlm command: is spacy-mlm installed?"
        with_mlm.append(t)
        with spacy_mlm_hidden():
            t, listed = seconds(cwd)
        assert not listed, "hiding spacy-mlm did not work"
        without.append(t)
    row = {"command": "python -m spacy --help", "rounds": args.rounds,
           "with_spacy_mlm_s": statistics.median(with_mlm), "without_s": statistics.median(without),
           "ratio": statistics.median(with_mlm) / statistics.median(without),
           "with_all": with_mlm, "without_all": without}
    print(json.dumps(row))
    append_jsonl(args.out, row)


if __name__ == "__main__":
    main()
