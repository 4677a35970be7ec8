"""Wheels: the spacy-mlm wheel and a packaged five-pipe pipeline install into a fresh venv and
load offline. The venv sees the test environment's dependencies through a .pth file (torch,
spaCy, ... are not reinstalled), but spacy_mlm and the pipeline come only from the wheels."""

import site
import subprocess
import sys
import zipfile
from pathlib import Path

from .test_ner_textcat import cat_examples, ner_examples, nlp_with

REPO = Path(__file__).resolve().parent.parent
ENV = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}


def run(cmd, cwd=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_pipeline_wheel_installs_and_loads_offline(bert_checkpoint, tmp_path):
    nlp = nlp_with(bert_checkpoint, "fill_mask")
    nlp.add_pipe("trf_ner")
    nlp.add_pipe("trf_textcat")
    nlp.add_pipe("trf_similarity")
    examples = ner_examples(nlp) + cat_examples(nlp)
    nlp.initialize(lambda: examples)
    nlp.meta["name"] = "mlm_wheeltest"
    nlp.to_disk(tmp_path / "pipeline")
    (tmp_path / "pkg").mkdir()
    run([sys.executable, "-m", "spacy", "package", str(tmp_path / "pipeline"), str(tmp_path / "pkg"),
         "--build", "wheel", "--force"])
    (pipeline_wheel,) = (tmp_path / "pkg").glob("*/dist/*.whl")
    with zipfile.ZipFile(pipeline_wheel) as zf:
        metadata = next(zf.read(n).decode() for n in zf.namelist() if n.endswith("METADATA"))
    assert "Requires-Dist: spacy-mlm" in metadata
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO),
         "-w", str(tmp_path / "wheels")])
    (own_wheel,) = (tmp_path / "wheels").glob("spacy_mlm-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(own_wheel), str(pipeline_wheel)])
    venv_site = run([py, "-c", "import site; print(site.getsitepackages()[0])"]).strip()
    Path(venv_site, "deps.pth").write_text(site.getsitepackages()[0] + "\n")
    script = (
        "import spacy, spacy_mlm\n"
        "assert spacy_mlm.__file__.startswith(%r), spacy_mlm.__file__\n"
        "nlp = spacy.load('en_mlm_wheeltest')\n"
        "doc = nlp('paris is a [MASK] city in france')\n"
        "print(','.join(nlp.pipe_names), len(doc._.fill_mask[0]), sorted(doc.cats), doc.has_vector)\n"
    ) % venv_site
    out = run([py, "-c", script], cwd=str(tmp_path)).split()
    assert out == ["transformer,fill_mask,trf_ner,trf_textcat,trf_similarity", "5", "['NEG',", "'POS']", "True"]
