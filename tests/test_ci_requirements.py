"""Under CI=true a missing dataset or MiniLM package fails the run; elsewhere it skips."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_one_data_test(ci: str):
    env = {**os.environ, "CI": ci, "SPACY_MLM_DATA_DIR": "/nonexistent/shared/data"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_convert.py", "-k", "test_sst2_counts and dev.tsv"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_data_fails_in_ci_and_skips_elsewhere(ci):
    code, out = run_one_data_test(ci)
    if ci:
        assert code == 1, out
        assert "needs the shared datasets in /nonexistent/shared/data" in out and "SPACY_MLM_DATA_DIR" in out
    else:
        assert code == 0, out
        assert "1 skipped" in out
