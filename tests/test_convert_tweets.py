"""`spacy-mlm convert --kind textcat --labels LABELS [--mapping MAPPING]`: a text file, a labels
file and an id-to-name mapping (the TweetEval layout), and TweetEval's official metrics in
`spacy evaluate`.

Hand-written samples are written to tmp_path. The counts on the real files need
../shared/data/tweeteval (or $SPACY_MLM_DATA_DIR); that test is skipped without it (under CI=true it fails).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from click.testing import CliRunner
from spacy.tokens import DocBin

from spacy_mlm.cli import main as cli_main
from spacy_mlm.convert import convert, convert_command, read_label_mapping, read_parallel_textcat
from spacy_mlm.errors import SpacyMlmError

from .conftest import missing

NLP = spacy.blank("en")
CONFIGS = Path(__file__).resolve().parent.parent / "configs"

# TweetEval's quirks: every text line ends with a space, the mapping has no final line break;
# here also CRLF line ends, a BOM, and blank lines at the end of the text and labels files.
TEXTS = "\ufeff@user I am so angry right now \r\nwhat a lovely day \r\nI miss you so much \r\n\r\n\r\n"
LABELS = "0\r\n1\r\n3\r\n\r\n"
MAPPING = "0\tanger\n1\tjoy\n2\toptimism\n3\tsadness"  # no example of optimism


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf8"))
    return path


def files(tmp_path, texts=TEXTS, labels=LABELS, mapping=MAPPING):
    return (write(tmp_path, "val_text.txt", texts), write(tmp_path, "val_labels.txt", labels),
            write(tmp_path, "mapping.txt", mapping) if mapping is not None else None)


def run_cli(capsys, args):
    """`spacy-mlm ARGS` in-process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        cli_main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_round_trip_with_mapping(tmp_path):
    text_path, labels_path, mapping_path = files(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    counts = convert(text_path, out, "textcat", labels_path=labels_path, mapping_path=mapping_path)
    assert counts["output"] == str(out / "val_text.spacy")
    assert counts["docs"] == 3 and counts["format"] == "text+labels" and counts["multilabel"] is False
    assert counts["labels"] == {"anger": 1, "joy": 1, "optimism": 0, "sadness": 1}
    assert counts["skipped_empty_text"] == 0
    docs = list(DocBin().from_disk(out / "val_text.spacy").get_docs(NLP.vocab))
    assert [doc.text for doc in docs] == ["@user I am so angry right now", "what a lovely day", "I miss you so much"]
    # One-hot over every class of the mapping, in its order, the absent `optimism` included.
    assert [list(doc.cats.items()) for doc in docs] == [
        [("anger", 1.0), ("joy", 0.0), ("optimism", 0.0), ("sadness", 0.0)],
        [("anger", 0.0), ("joy", 1.0), ("optimism", 0.0), ("sadness", 0.0)],
        [("anger", 0.0), ("joy", 0.0), ("optimism", 0.0), ("sadness", 1.0)],
    ]


def test_without_mapping_the_labels_are_the_names(tmp_path):
    text_path, labels_path, _ = files(tmp_path, texts="great !\nawful\nfine\n", labels="pos\nneg\npos", mapping=None)
    stats = {}
    docs = list(read_parallel_textcat(text_path, labels_path, nlp=NLP, stats=stats))
    assert stats["labels"] == ["neg", "pos"] and stats["multilabel"] is False
    assert [doc.cats for doc in docs] == [{"neg": 0.0, "pos": 1.0}, {"neg": 1.0, "pos": 0.0}, {"neg": 0.0, "pos": 1.0}]


def test_mapping_layouts(tmp_path):
    # TAB or a space between id and name, CRLF, a final blank line, names with spaces after a TAB.
    path = write(tmp_path, "m.txt", "0\tnot-offensive\r\n1 offensive\r\n2\tvery offensive \r\n\r\n")
    assert read_label_mapping(path) == {"0": "not-offensive", "1": "offensive", "2": "very offensive"}


def test_skip_empty_text(tmp_path):
    text_path, labels_path, mapping_path = files(tmp_path, texts="a\n \nb\n\nc \n", labels="0\n1\n2\n3\n0\n")
    with pytest.raises(SpacyMlmError) as exc:
        list(read_parallel_textcat(text_path, labels_path, mapping_path, nlp=NLP))
    message = str(exc.value)
    assert message.startswith(f"{text_path}:2: the text is empty but {labels_path}:2 gives it the label '1'")
    assert "2 empty text lines: 2, 4" in message and "--skip-empty-text" in message
    stats = {}
    docs = list(read_parallel_textcat(text_path, labels_path, mapping_path, skip_empty_text=True, nlp=NLP, stats=stats))
    assert [(doc.text, max(doc.cats, key=doc.cats.get)) for doc in docs] == [("a", "anger"), ("b", "optimism"),
                                                                             ("c", "anger")]
    assert stats["skipped_empty_text"] == 2


@pytest.mark.parametrize(
    "texts,labels,mapping,fragments",
    [
        # line counts differ: both files and both counts
        ("a\nb\nc\n", "0\n1\n", MAPPING, ["{text} has 3 lines but {labels} has 2", "belong together"]),
        ("a\n", "0\n1\n\n", None, ["{text} has 1 line but {labels} has 2"]),
        # a label that is not an id of the mapping: file, line, value, the known ids
        ("a\nb\n", "0\n4\n", MAPPING, ["{labels}:2: the label '4' is not an id of {mapping}",
                                       "known ids: 0, 1, 2, 3"]),
        ("a\nb\n", "0\njoy\n", MAPPING, ["{labels}:2: the label 'joy'", "known ids: 0, 1, 2, 3"]),
        ("a\nb\n", "0\n\n1\n", MAPPING, ["{text} has 2 lines but {labels} has 3"]),  # blank lines inside count
        # an empty text line: file and line
        ("a\n\t \nb\n", "0\n1\n2\n", MAPPING, ["{text}:2: the text is empty", "{labels}:2 gives it the label '1'"]),
        # an empty label line, a label with spaces (the files swapped), bad mapping lines
        ("a\nb\nc\n", "0\n\n1\n", MAPPING, ["{labels}:2: the label is empty"]),
        ("0\n1\n", "a tweet\nanother\n", None, ["{labels}:1: bad label 'a tweet'", "--labels"]),
        ("a\n", "0\n", "0\tanger\n1\n", ["{mapping}:2: expected `id<TAB>name` but found '1'"]),
        ("a\n", "0\n", "0\tanger\n0\tjoy\n", ["{mapping}:2: the id '0' is already on line 1"]),
        ("a\n", "0\n", "0\tjoy\n1\tjoy\n", ["{mapping}:2: the name 'joy' is already the name of id '0'"]),
        ("a\n", "0\n", "\n \n", ["{mapping}: the file holds no classes"]),
        ("\n \n", "\n", MAPPING, ["{text}: the file holds no examples"]),
    ],
)
def test_errors(tmp_path, capsys, texts, labels, mapping, fragments):
    text_path, labels_path, mapping_path = files(tmp_path, texts, labels, mapping)
    names = {"text": text_path, "labels": labels_path, "mapping": mapping_path}
    expected = [f.format(**names) for f in fragments]
    out = tmp_path / "out.spacy"
    with pytest.raises(SpacyMlmError) as exc:
        convert(text_path, out, "textcat", labels_path=labels_path, mapping_path=mapping_path)
    assert all(f in str(exc.value) for f in expected), str(exc.value)
    assert not out.exists()
    # The command line: the message, exit status 1, no traceback.
    args = ["convert", text_path, out, "--kind", "textcat", "--labels", labels_path]
    code, _, err = run_cli(capsys, args + (["--mapping", mapping_path] if mapping_path else []))
    assert code == 1 and err.startswith("Error: ") and "Traceback" not in err
    assert all(f in " ".join(err.split()) for f in expected), err
    assert not out.exists()


@pytest.mark.parametrize("which", ["text", "labels", "mapping"])
def test_not_utf8(tmp_path, capsys, which):
    text_path, labels_path, mapping_path = files(tmp_path, texts="a\nb\n", labels="0\n1\n")
    bad = {"text": text_path, "labels": labels_path, "mapping": mapping_path}[which]
    bad.write_bytes({"text": "caf\xe9\nK\xf6ln\n", "labels": "0\n1\xa0\n", "mapping": "0\tanger\n1\tj\xf6y\n"}[which]
                    .encode("latin1"))
    line = 1 if which == "text" else 2
    with pytest.raises(SpacyMlmError, match=f"{bad}:{line}: not valid UTF-8"):
        convert(text_path, tmp_path / "out.spacy", "textcat", labels_path=labels_path, mapping_path=mapping_path)
    code, _, err = run_cli(capsys, ["convert", text_path, tmp_path / "out.spacy", "--kind", "textcat",
                                    "--labels", labels_path, "--mapping", mapping_path])
    assert code == 1 and err.startswith(f"Error: {bad}:{line}: not valid UTF-8") and "Traceback" not in err


def test_cli(tmp_path, capsys):
    text_path, labels_path, mapping_path = files(tmp_path, texts="a\n\nb\n", labels="0\n1\n2\n")
    out = tmp_path / "val.spacy"
    code, stdout, _ = run_cli(capsys, ["convert", text_path, out, "--kind", "textcat", "--labels", labels_path,
                                       "--mapping", mapping_path, "--skip-empty-text"])
    assert code == 0 and "Wrote 2 docs" in stdout and "format text+labels, 4 labels, exclusive" in stdout
    assert "; 1 example with empty text left out" in " ".join(stdout.split())
    assert [doc.text for doc in DocBin().from_disk(out).get_docs(NLP.vocab)] == ["a", "b"]
    help_text = " ".join(CliRunner().invoke(convert_command, ["--help"]).output.split())
    assert "--labels" in help_text and "--mapping" in help_text and "irony: cats_f_per_type irony f" in help_text


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--mapping", "{mapping}"], "--mapping and --skip-empty-text go with --labels LABEL_FILE"),
        (["--skip-empty-text"], "--mapping and --skip-empty-text go with --labels LABEL_FILE"),
        (["--labels", "{labels}", "--format", "label-tab"], "--format label-tab is the layout of a file"),
        (["--labels", "{labels}", "--multilabel"], "leave out --multilabel"),
    ],
)
def test_option_errors(tmp_path, capsys, extra, fragment):
    text_path, labels_path, mapping_path = files(tmp_path)
    extra = [x.format(labels=labels_path, mapping=mapping_path) for x in extra]
    code, _, err = run_cli(capsys, ["convert", text_path, tmp_path / "o.spacy", "--kind", "textcat", *extra])
    assert code == 1 and fragment in err and "Traceback" not in err
    code, _, err = run_cli(capsys, ["convert", text_path, tmp_path / "o.spacy", "--kind", "ner",
                                    "--labels", labels_path])
    assert code == 1 and "--labels is for --kind textcat" in err
    assert not (tmp_path / "o.spacy").exists()


def test_tweeteval_emotion_val(shared_data, tmp_path):
    task = shared_data / "tweeteval" / "emotion"
    if not task.is_dir():
        missing(f"needs TweetEval emotion in {task}: put shared/data beside the repo or set SPACY_MLM_DATA_DIR")
    out = tmp_path / "val.spacy"
    counts = convert(task / "val_text.txt", out, "textcat", labels_path=task / "val_labels.txt",
                     mapping_path=task / "mapping.txt")
    assert counts["docs"] == 374 and counts["skipped_empty_text"] == 0
    assert counts["labels"] == {"anger": 160, "joy": 97, "optimism": 28, "sadness": 89}
    docs = list(DocBin().from_disk(out).get_docs(NLP.vocab))
    first = (task / "val_text.txt").read_text(encoding="utf8").split("\n")[0]
    assert first.endswith(" ") and docs[0].text == first.strip()
    assert docs[0].cats == {"anger": 1.0, "joy": 0.0, "optimism": 0.0, "sadness": 0.0}
    assert all(list(doc.cats) == ["anger", "joy", "optimism", "sadness"] for doc in docs)
    assert all(sum(doc.cats.values()) == 1.0 for doc in docs)


# ---------------------------------------------------------------------------------------------
# The official metrics in `spacy evaluate`: macro F1 (emotion, hate, offensive), F1 of `irony`
# ---------------------------------------------------------------------------------------------

TWEETS = ["what a great day", "I hate mondays so much", "love this song", "worst service ever",
          "so happy for you", "this is terrible news", "best game of the year", "I am so sad today"]


@pytest.mark.parametrize("task", ["emotion", "irony"])
def test_spacy_evaluate_reports_the_official_metric(task, bert_checkpoint, tmp_path):
    mapping = "0\tanger\n1\tjoy\n2\toptimism\n3\tsadness" if task == "emotion" else "0\tnon_irony\n1\tirony"
    n = 4 if task == "emotion" else 2
    labels = "".join(f"{i % n}\n" for i in range(len(TWEETS)))
    text_path, labels_path, mapping_path = files(tmp_path, "\n".join(TWEETS), labels, mapping)
    data = convert(text_path, tmp_path / "data.spacy", "textcat", labels_path=labels_path,
                   mapping_path=mapping_path)["output"]
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "spacy", "train", str(CONFIGS / "textcat.cfg"), "--output", str(tmp_path / "out"),
           "--paths.train", data, "--paths.dev", data, "--paths.base_model", str(bert_checkpoint),
           "--training.max_steps", "2", "--training.eval_frequency", "2"]
    if task == "irony":  # the binary task's positive class: cats_score is its F
        cmd += ["--initialize.components.textcat", '{"positive_label": "irony"}']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    scores_path = tmp_path / "scores.json"
    proc = subprocess.run([sys.executable, "-m", "spacy", "evaluate", str(tmp_path / "out" / "model-last"), data,
                           "--output", str(scores_path)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    scores = json.loads(scores_path.read_text())
    per_type = scores["cats_f_per_type"]
    if task == "emotion":
        assert "TEXTCAT (macro F)" in proc.stdout
        assert set(per_type) == {"anger", "joy", "optimism", "sadness"}
        assert scores["cats_score"] == pytest.approx(sum(prf["f"] for prf in per_type.values()) / 4)
    else:
        assert "TEXTCAT (F (irony))" in proc.stdout
        assert scores["cats_score"] == pytest.approx(per_type["irony"]["f"])
