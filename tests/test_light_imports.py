"""Importing spacy-mlm is cheap: the package, its spaCy CLI entry point and `spacy-mlm --help`
load neither torch nor transformers (spaCy imports every `spacy_cli` entry point on each
`python -m spacy` call). torch/transformers load with the first pipe; pipes still register."""

import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "spacy_transformers")


def python(code: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def loaded(modules=HEAVY) -> str:
    """Code printing, as its last line, which of `modules` the process imported."""
    return f"\nprint(sorted(m for m in {modules!r} if m in sys.modules))"


def test_package_and_spacy_cli_entry_point_import_no_torch():
    out = python("import sys, spacy_mlm, spacy_mlm.pipes, spacy_mlm.spacy_cli" + loaded())
    assert out.stdout.splitlines()[-1] == "[]"


def test_spacy_mlm_help_imports_no_torch():
    code = (
        "import sys\nfrom spacy_mlm.cli import cli\n"
        "try:\n    cli.main(['--help'], prog_name='spacy-mlm')\nexcept SystemExit as e:\n    assert e.code == 0, e.code"
        + loaded()
    )
    lines = python(code).stdout.splitlines()
    assert lines[-1] == "[]"
    assert any(line.split()[:1] == ["init-config"] for line in lines), lines


def test_python_m_spacy_help_lists_mlm_without_transformers():
    """spaCy itself imports torch (thinc does, when it is installed); we add no transformers."""
    code = (
        "import sys\nfrom spacy.cli import setup_cli\nsys.argv = ['spacy', '--help']\n"
        "try:\n    setup_cli()\nexcept SystemExit as e:\n    assert e.code == 0, e.code"
        + loaded(("transformers", "spacy_transformers"))
    )
    lines = python(code).stdout.splitlines()
    assert lines[-1] == "[]"
    assert any(line.split()[:1] == ["mlm"] for line in lines), lines


def test_python_m_spacy_mlm_forwards_to_spacy_mlm():
    out = subprocess.run([sys.executable, "-m", "spacy", "mlm", "--help"], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Usage: python -m spacy mlm" in out.stdout and "init-config" in out.stdout


def test_first_pipe_loads_torch_and_prepares_the_process():
    code = (
        "import sys, spacy, spacy_mlm\nfrom spacy_mlm.pipes import _fork\n"
        "assert not _fork._registered and 'transformers' not in sys.modules\n"
        "spacy.blank('en').add_pipe('trf_similarity')\n"
        "assert _fork._registered and spacy_mlm.TrfSimilarity.__module__ == 'spacy_mlm.pipes.similarity'"
        + loaded()
    )
    assert python(code).stdout.splitlines()[-1] == str(sorted(HEAVY))


def test_lazy_names():
    import spacy_mlm
    import spacy_mlm.pipes

    assert set(spacy_mlm.pipes.__all__) <= set(dir(spacy_mlm.pipes))
    for name in spacy_mlm.pipes.__all__:
        assert getattr(spacy_mlm.pipes, name).__name__ == name
    assert spacy_mlm.FillMask is spacy_mlm.pipes.FillMask
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        spacy_mlm.pipes.Nope  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        spacy_mlm.Nope  # noqa: B018
