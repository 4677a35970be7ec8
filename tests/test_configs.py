"""configs/*.cfg train with `python -m spacy train` on a tiny checkpoint, and the result loads."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_mlm.convert import convert

from .test_ner_textcat import CAT_DATA, NER_DATA
from .test_similarity_training import STS_ROWS

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def write_data(nlp, path: Path, ner=True, cats=True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if ner:
        db = DocBin()
        for text, ents in NER_DATA:
            doc = nlp.make_doc(text)
            doc.ents = [doc.char_span(s, e, label=lb) for s, e, lb in ents]
            db.add(doc)
        db.to_disk(path / "ner.spacy")
    if cats:
        db = DocBin()
        for text, label in CAT_DATA:
            doc = nlp.make_doc(text)
            doc.cats = {"POS": float(label == "POS"), "NEG": float(label == "NEG")}
            db.add(doc)
        db.to_disk(path / "textcat.spacy")
    return path


# full.cfg without pairs is what the `all` workflow trains (tests/test_main_job.py).
@pytest.mark.parametrize("name", ["ner", "textcat", "full+pairs"])
def test_config_trains_and_loads(name, bert_checkpoint, tmp_path):
    nlp = spacy.blank("en")
    pairs = name.endswith("+pairs")
    name = name.split("+")[0]
    data = write_data(nlp, tmp_path / "data", ner=name != "textcat", cats=name != "ner")
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "spacy", "train", str(CONFIGS / f"{name}.cfg"), "--output", str(out),
        "--paths.train", str(data), "--paths.dev", str(data), "--paths.base_model", str(bert_checkpoint),
        "--training.max_steps", "4", "--training.eval_frequency", "2",
    ]
    if pairs:  # STS pairs beside the NER/textcat docs (spacy_mlm.MultiTaskCorpus.v1): trf_similarity trains too
        (tmp_path / "sts.csv").write_text(STS_ROWS + "\n", encoding="utf8")
        convert(tmp_path / "sts.csv", tmp_path / "pairs" / "sts.spacy", "sts")
        cmd += ["--paths.train_pairs", str(tmp_path / "pairs" / "sts.spacy")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    trained = spacy.load(out / "model-last")
    doc = trained("paris is a [MASK] city in france")
    if name != "textcat":
        ner = trained.get_pipe("ner")
        assert set(ner.labels) == {label for _, ents in NER_DATA for *_, label in ents}
        assert all(0 <= e.start < e.end <= len(doc) and e.label_ in ner.labels for e in doc.ents)
    if name != "ner":
        assert set(doc.cats) == {"POS", "NEG"} and sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)
    if name == "full":
        assert trained.pipe_names == ["transformer", "fill_mask", "ner", "textcat", "similarity"]
        assert len(doc._.fill_mask) == 1 and len(doc._.fill_mask[0]) == 5
        assert doc.has_vector and -1.0 <= doc.similarity(trained("a city")) <= 1.0 + 1e-6
        # The last step's losses: similarity learns only from pairs, NER and textcat still learn beside them.
        losses = json.loads((out / "model-last" / "meta.json").read_text())["performance"]
        assert losses["similarity_loss"] > 0 and losses["ner_loss"] > 0 and losses["textcat_loss"] > 0


def test_readme_fill_mask_recipe_trains_with_ner_cfg(bert_checkpoint, tmp_path):
    """The README's fill_mask block for joint training with trf_tagger_ner (mlm_every 4, replay)
    is a valid config: spacy train runs it, the MLM loss is trained at the 4th update, and the
    saved pipeline keeps the settings."""
    from spacy.util import load_config
    from thinc.api import Config

    readme = (CONFIGS.parent / "README.md").read_text(encoding="utf8")
    start = readme.index("    [components.fill_mask]\n")
    block = readme[start : readme.index("\n\n", start)]
    recipe = Config().from_str("[components]\n" + "\n".join(line[4:] for line in block.splitlines()))
    config = load_config(CONFIGS / "ner.cfg", interpolate=False)
    config["nlp"]["pipeline"] = ["transformer", "fill_mask", "ner"]
    config["components"]["fill_mask"] = dict(recipe["components"]["fill_mask"])
    (tmp_path / "wiki.txt").write_text("the river runs north past the old town hall\nwinter comes early here\n", encoding="utf8")
    config["components"]["fill_mask"]["replay_text"] = str(tmp_path / "wiki.txt")
    config.to_disk(tmp_path / "joint.cfg")
    data = write_data(spacy.blank("en"), tmp_path / "data", cats=False)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(tmp_path / "joint.cfg"), "--output", str(out),
         "--paths.train", str(data), "--paths.dev", str(data), "--paths.base_model", str(bert_checkpoint),
         "--training.max_steps", "5", "--training.eval_frequency", "4"],
        capture_output=True, text=True, timeout=600, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # The log's rows: epoch, step, transformer loss, fill_mask loss, ...; steps 1-4 hold the 4th update.
    rows = [line.split() for line in proc.stdout.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    mlm_loss = {int(row[1]): float(row[3]) for row in rows}
    assert mlm_loss[0] == 0.0 and mlm_loss[4] > 0
    saved = spacy.load(out / "model-last").config["components"]["fill_mask"]
    assert {k: saved[k] for k in ("mlm_share", "loss_weight", "mlm_every", "replay_docs")} == {
        "mlm_share": 0.125, "loss_weight": 0.1, "mlm_every": 4, "replay_docs": 4}
