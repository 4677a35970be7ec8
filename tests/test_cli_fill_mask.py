"""`spacy-mlm fill-mask` on an HF checkpoint and on a saved pipeline."""

import subprocess
import sys

from click.testing import CliRunner

from spacy_mlm.cli import cli

from .conftest import make_nlp


def test_fill_mask_cli_checkpoint_and_pipeline(bert_checkpoint, tmp_path):
    nlp = make_nlp(bert_checkpoint, "fill_mask")
    expected = nlp("the capital of [MASK] is paris")._.fill_mask[0][:3]
    nlp.to_disk(tmp_path / "pipeline")
    for model in (str(bert_checkpoint), str(tmp_path / "pipeline")):
        result = CliRunner().invoke(cli, ["fill-mask", model, "the capital of [MASK] is paris", "--top-k", "3"])
        assert result.exit_code == 0, result.output
        lines = [line for line in result.output.splitlines() if line[:1].isdigit()]
        assert len(lines) == 3
        for line, pred in zip(lines, expected):
            assert pred["token_str"] in line and f"{pred['score']:.4f}" in line


def test_fill_mask_cli_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "spacy_mlm", "fill-mask", str(tmp_path / "missing"), "a [MASK]"],
        capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert "missing" in proc.stderr and "not an HF checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr
