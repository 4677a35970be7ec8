"""Wheels: the spacy-mlm wheel and a packaged five-pipe pipeline install into a fresh venv and
load offline; the wheel's commands and entry points work there. The venv sees the test
environment's dependencies through a .pth file (torch, spaCy, ... are not reinstalled), but
spacy_mlm and the pipeline come only from the wheels. The spacy-mlm wheel is built once per session
(the wheel_venv fixture, in conftest.py)."""

import configparser
import sys
import zipfile
from pathlib import Path

import spacy

from .conftest import run
from .pretrain_fixtures import SMALL, sentences, write_lines
from .test_configs import write_data
from .test_ner_textcat import NER_DATA, cat_examples, ner_examples, nlp_with

REPO = Path(__file__).resolve().parent.parent
FACTORIES = ["fill_mask", "trf_beam_ner", "trf_ner", "trf_similarity", "trf_tagger_ner", "trf_textcat",
             "trf_textcat_multilabel"]


def test_pipeline_wheel_installs_and_loads_offline(wheel_venv, bert_checkpoint, tmp_path):
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
    py, venv_site = wheel_venv.python, wheel_venv.site
    run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(pipeline_wheel)])
    script = (
        "import spacy, spacy_mlm\n"
        "assert spacy_mlm.__file__.startswith(%r), spacy_mlm.__file__\n"
        "nlp = spacy.load('en_mlm_wheeltest')\n"
        "doc = nlp('paris is a [MASK] city in france')\n"
        "print(','.join(nlp.pipe_names), len(doc._.fill_mask[0]), sorted(doc.cats), doc.has_vector)\n"
    ) % venv_site
    out = run([py, "-c", script], cwd=str(tmp_path)).split()
    assert out == ["transformer,fill_mask,trf_ner,trf_textcat,trf_similarity", "5", "['NEG',", "'POS']", "True"]


def test_wheel_ships_configs_and_entry_points(wheel_venv, tmp_path):
    with zipfile.ZipFile(wheel_venv.wheel) as zf:
        names = zf.namelist()
        entry_points = configparser.ConfigParser(delimiters=("=",))
        entry_points.optionxform = str
        entry_points.read_string(next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt")))
    assert sorted(n for n in names if n.startswith("spacy_mlm/configs/")) == [
        f"spacy_mlm/configs/{kind}.cfg" for kind in ("full", "ner", "pretrain", "similarity", "textcat")
    ]
    sources = {p.relative_to(REPO).as_posix() for p in (REPO / "spacy_mlm").rglob("*") if p.is_file()}
    assert {n for n in names if n.startswith("spacy_mlm/")} == {n for n in sources if "__pycache__" not in n}
    assert sorted(entry_points["spacy_factories"]) == FACTORIES
    assert dict(entry_points["spacy_cli"]) == {"mlm": "spacy_mlm.spacy_cli"}
    assert dict(entry_points["console_scripts"]) == {"spacy-mlm": "spacy_mlm.cli:main"}
    # Every entry point of the installed wheel loads, and the factories register with spaCy.
    script = (
        "import spacy\nfrom importlib.metadata import distribution\n"
        "dist = distribution('spacy-mlm')\n"
        "assert str(dist.locate_file('spacy_mlm')).startswith(%r), dist.locate_file('spacy_mlm')\n"
        "for ep in dist.entry_points:\n    ep.load()\n"
        "print(sorted(ep.name for ep in dist.entry_points if ep.group == 'spacy_factories'))\n"
        "nlp = spacy.blank('en')\nnlp.add_pipe('transformer')\n"
        "print(all(nlp.add_pipe(f) for f in %r))\n"
    ) % (wheel_venv.site, FACTORIES)
    # cwd outside the repo: a spacy_mlm.egg-info there (from an in-tree build) would be found first.
    assert run([wheel_venv.python, "-c", script], cwd=tmp_path).split("\n")[-3:] == [str(FACTORIES), "True", ""]
    assert "init-config" in run([str(wheel_venv.bin / "spacy-mlm"), "--help"], cwd=tmp_path)
    assert "init-config" in run([wheel_venv.python, "-m", "spacy", "mlm", "--help"], cwd=tmp_path)



def test_wheel_registers_the_mlm_data_functions_by_entry_point(wheel_venv, tmp_path):
    """A config names spacy_mlm.Corpus.v1 or a masking function: spaCy finds it through the wheel's
    spacy_misc entry points, without an import of spacy_mlm first."""
    names = ["spacy_mlm.Corpus.v1", "spacy_mlm.PlainTextCorpus.v1", "spacy_mlm.JsonlCorpus.v1",
             "spacy_mlm.DocBinCorpus.v1", "spacy_mlm.TokenMasking.v1", "spacy_mlm.WholeWordMasking.v1",
             "spacy_mlm.SpanMasking.v1"]
    script = (
        "import sys\nfrom spacy.util import registry\n"
        "assert 'spacy_mlm' not in sys.modules\n"
        "print(' '.join(registry.misc.get(name).__module__ for name in %r))\n"
    ) % (names,)
    modules = run([wheel_venv.python, "-c", script], cwd=tmp_path).split()
    assert modules == ["spacy_mlm.mlm_data.corpus"] * 4 + ["spacy_mlm.mlm_data.masking"] * 3

def test_wheel_init_config_pretrain_and_train(wheel_venv, bert_checkpoint, tmp_path):
    """The configs a non-editable install writes run: pretraining, then `spacy train` on NER."""
    spacy_mlm = str(wheel_venv.bin / "spacy-mlm")
    run([spacy_mlm, "init-config", "pretrain", "pretrain.cfg"], cwd=tmp_path)
    train = write_lines(tmp_path / "train.txt", sentences(60, seed=1))
    dev = write_lines(tmp_path / "dev.txt", sentences(20, seed=2))
    small = [x for k, v in SMALL.items() for x in (f"--{k}", str(v))]
    out = run([spacy_mlm, "pretrain", "pretrain.cfg", "pt_out", "--paths.train", str(train), "--paths.dev", str(dev),
               "--paths.base_model", str(bert_checkpoint), "--training.max_steps", "2",
               "--training.eval_frequency", "2", *small], cwd=tmp_path)
    assert "Saved the pretrained model to" in out
    assert (tmp_path / "pt_out" / "final" / "config.json").is_file()

    run([spacy_mlm, "init-config", "ner", "ner.cfg", "--base-model", str(tmp_path / "pt_out" / "final")], cwd=tmp_path)
    data = write_data(spacy.blank("en"), tmp_path / "data", cats=False)
    run([wheel_venv.python, "-m", "spacy", "train", "ner.cfg", "--output", "ner_out", "--paths.train", str(data),
         "--paths.dev", str(data), "--training.max_steps", "4", "--training.eval_frequency", "2"], cwd=tmp_path)
    script = (
        "import spacy\nnlp = spacy.load('ner_out/model-last')\n"
        "print(nlp.pipe_names, nlp.get_pipe('ner').labels, nlp.get_pipe('ner').__module__)\n"
    )
    labels = tuple(sorted({label for _, ents in NER_DATA for *_, label in ents}))
    assert run([wheel_venv.python, "-c", script], cwd=tmp_path).strip() == (
        f"['transformer', 'ner'] {labels} spacy_mlm.pipes.tagger_ner"
    )


def test_quantized_pipeline_wheel_installs_and_loads(wheel_venv, bert_checkpoint, tmp_path):
    """`spacy-mlm quantize` (the wheel's command) writes an int8 pipeline; `spacy package` makes a
    wheel of it that installs and loads in the fresh venv, with an int8 encoder."""
    nlp = nlp_with(bert_checkpoint, "fill_mask")
    nlp.add_pipe("trf_textcat")
    nlp.initialize(lambda: cat_examples(nlp))
    nlp.meta["name"] = "mlm_int8test"
    nlp.to_disk(tmp_path / "fp32")
    run([str(wheel_venv.bin / "spacy-mlm"), "quantize", str(tmp_path / "fp32"), str(tmp_path / "int8"),
         "--dtype", "int8"], cwd=str(tmp_path))
    (tmp_path / "pkg").mkdir()
    run([sys.executable, "-m", "spacy", "package", str(tmp_path / "int8"), str(tmp_path / "pkg"),
         "--build", "wheel", "--force"])
    (pipeline_wheel,) = (tmp_path / "pkg").glob("*/dist/*.whl")
    run([wheel_venv.python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(pipeline_wheel)])
    script = (
        "import spacy\nfrom spacy_mlm.precision import encoder_dtype\n"
        "nlp = spacy.load('en_mlm_int8test')\n"
        "doc = nlp('paris is a [MASK] city in france')\n"
        "print(encoder_dtype(nlp), len(doc._.fill_mask[0]), sorted(doc.cats))\n"
    )
    assert run([wheel_venv.python, "-c", script], cwd=str(tmp_path)).split() == ["int8", "5", "['NEG',", "'POS']"]
