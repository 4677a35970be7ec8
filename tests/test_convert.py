"""spacy_mlm.convert: CoNLL/IOB NER, textcat and STS files to .spacy DocBins.

Hand-written samples are written to tmp_path by each test. The counts on the real files need
../shared/data (or $SPACY_MLM_DATA_DIR); only those tests are skipped without it (under CI=true they fail).
"""

from pathlib import Path

import pytest
import spacy
from click.testing import CliRunner
from spacy.tokens import DocBin

from spacy_mlm.convert import (
    convert,
    convert_command,
    detect_textcat_format,
    iob_to_iob2,
    read_conll_ner,
    read_sts,
    read_textcat,
)
from spacy_mlm.errors import SpacyMlmError

from .conftest import DATA_DIR

needs_data = pytest.mark.usefixtures("shared_data")  # skipped without the data; a failure under CI=true

NLP = spacy.blank("en")

# 4 columns, space-separated, IOB1 (CoNLL-2003 style), both separators kinds, 2 documents,
# no final empty line.
CONLL_4COL = (
    "-DOCSTART- -X- -X- O\n"
    "\n"
    "EU NNP B-NP I-ORG\n"
    "rejects VBZ B-VP O\n"
    "German JJ B-NP I-MISC\n"
    "call NN I-NP O\n"
    "to TO B-VP O\n"
    "boycott VB I-VP O\n"
    "British JJ B-NP I-MISC\n"
    "lamb NN I-NP O\n"
    ". . O O\n"
    " \t \n"
    "Peter NNP B-NP I-PER\n"
    "Blackburn NNP I-NP I-PER\n"
    "\n"
    "-DOCSTART- -X- -X- O\n"
    "\n"
    "Alice NNP I-NP I-PER\n"
    "Bob NNP I-NP B-PER\n"
    "in IN O O\n"
    "New NNP I-NP I-LOC\n"
    "York NNP I-NP I-LOC"
)

# 2 columns, TAB-separated, IOB2 (WNUT-17 style), separators that are a single TAB.
CONLL_2COL = (
    "-DOCSTART-\tO\n"
    "\t\n"
    "Empire\tB-location\n"
    "State\tI-location\n"
    "Building\tI-location\n"
    "\t\n"
    "@paul\tO\n"
    "likes\tO\n"
    "\t\n"
    "Sage\tB-person\n"
    "\n"
)


def write(tmp_path: Path, text: str, name: str = "data.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf8")
    return path


def ents(doc):
    return [(ent.text, ent.label_) for ent in doc.ents]


# ---------------------------------------------------------------------------------------------
# NER
# ---------------------------------------------------------------------------------------------


def test_iob_to_iob2():
    assert iob_to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]) == [
        "B-PER",
        "I-PER",
        "B-PER",
        "O",
        "B-LOC",
        "B-ORG",
    ]
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "I-LOC"]
    assert iob_to_iob2(iob2) == iob2


def test_conll_4col_iob1_docstart(tmp_path):
    stats = {}
    docs = list(read_conll_ner(write(tmp_path, CONLL_4COL), vocab=NLP.vocab, stats=stats))
    assert [doc.text for doc in docs] == [
        "EU rejects German call to boycott British lamb .",
        "Peter Blackburn",
        "Alice Bob in New York",
    ]
    assert ents(docs[0]) == [("EU", "ORG"), ("German", "MISC"), ("British", "MISC")]
    assert ents(docs[1]) == [("Peter Blackburn", "PER")]
    # IOB1 B- splits two adjacent PER entities.
    assert ents(docs[2]) == [("Alice", "PER"), ("Bob", "PER"), ("New York", "LOC")]
    assert [(e.start, e.end) for e in docs[2].ents] == [(0, 1), (1, 2), (3, 5)]
    assert all(len(list(doc.sents)) == 1 for doc in docs)
    assert stats == {"docstart_lines": 2, "iob1_fixes": 6}


def test_conll_n_sents_groups_within_documents(tmp_path):
    path = write(tmp_path, CONLL_4COL)
    for n_sents in (2, 10):
        docs = list(read_conll_ner(path, n_sents=n_sents, vocab=NLP.vocab))
        # -DOCSTART- starts a new doc even when the group is not full.
        assert [[s.text for s in doc.sents] for doc in docs] == [
            ["EU rejects German call to boycott British lamb .", "Peter Blackburn"],
            ["Alice Bob in New York"],
        ]
        assert ents(docs[0])[-1] == ("Peter Blackburn", "PER")
        assert docs[0][9].is_sent_start and not docs[0][10].is_sent_start


def test_conll_2col_tab_separators(tmp_path):
    docs = list(read_conll_ner(write(tmp_path, CONLL_2COL), vocab=NLP.vocab))
    assert [doc.text for doc in docs] == ["Empire State Building", "@paul likes", "Sage"]
    assert ents(docs[0]) == [("Empire State Building", "location")]
    assert ents(docs[1]) == []
    assert ents(docs[2]) == [("Sage", "person")]
    # Grouping all 3 sentences (no -DOCSTART- between them) keeps the 3 sentence starts.
    (doc,) = read_conll_ner(write(tmp_path, CONLL_2COL), n_sents=3, vocab=NLP.vocab)
    assert [s.text for s in doc.sents] == ["Empire State Building", "@paul likes", "Sage"]


def test_convert_ner_round_trip(tmp_path):
    out = tmp_path / "out" / "train.spacy"
    counts = convert(write(tmp_path, CONLL_4COL), out, "ner")
    assert counts["docs"] == 3 and counts["sentences"] == 3 and counts["tokens"] == 16
    assert counts["entities"] == 7
    assert counts["labels"] == {"LOC": 1, "MISC": 2, "ORG": 1, "PER": 3}
    docs = list(DocBin().from_disk(out).get_docs(NLP.vocab))
    assert [ents(doc) for doc in docs] == [
        [("EU", "ORG"), ("German", "MISC"), ("British", "MISC")],
        [("Peter Blackburn", "PER")],
        [("Alice", "PER"), ("Bob", "PER"), ("New York", "LOC")],
    ]
    assert all(doc.has_annotation("SENT_START") for doc in docs)
    # An existing directory as OUTPUT gets <input stem>.spacy.
    counts = convert(write(tmp_path, CONLL_2COL, "wnut.conll"), tmp_path / "out", "ner", n_sents=5)
    assert counts["output"] == str(tmp_path / "out" / "wnut.spacy")
    (doc,) = DocBin().from_disk(tmp_path / "out" / "wnut.spacy").get_docs(NLP.vocab)
    assert len(list(doc.sents)) == 3 and ents(doc)[0] == ("Empire State Building", "location")


@pytest.mark.parametrize(
    "text,line,fragments",
    [
        ("EU NNP B-NP B-ORG\nrejects VBZ O\n", 2, ["expected 4 columns", "line 1", "found 3"]),
        ("EU\tB-ORG\nrejects\tO\tx\n", 2, ["expected 2 columns", "found 3"]),
        ("EU\tB-ORG\n\nrejects\n", 3, ["found 1 column", "'rejects'"]),
        ("EU\tB-ORG\nrejects\tB_PER\n", 2, ["'B_PER' is not IOB", "B-TYPE"]),
        ("EU\tU-ORG\n", 1, ["'U-ORG' is not IOB"]),
        ("EU\tB-\n", 1, ["'B-' is not IOB"]),
    ],
)
def test_conll_malformed_lines(tmp_path, text, line, fragments):
    path = write(tmp_path, text)
    with pytest.raises(SpacyMlmError) as exc:
        list(read_conll_ner(path, vocab=NLP.vocab))
    assert f"{path}:{line}: " in str(exc.value)
    for fragment in fragments:
        assert fragment in str(exc.value)


@pytest.mark.parametrize("kind", ["ner", "textcat", "sts"])
@pytest.mark.parametrize("text", ["", "\n \n\t\n"])
def test_empty_input(tmp_path, kind, text):
    path = write(tmp_path, text)
    with pytest.raises(SpacyMlmError, match="empty or blank"):
        convert(path, tmp_path / "out.spacy", kind)
    assert not (tmp_path / "out.spacy").exists()


def test_docstart_only_and_missing_file(tmp_path):
    with pytest.raises(SpacyMlmError, match="no token lines"):
        convert(write(tmp_path, "-DOCSTART- -X- -X- O\n\n"), tmp_path / "out.spacy", "ner")
    with pytest.raises(SpacyMlmError, match="no such file"):
        convert(tmp_path / "missing.conll", tmp_path / "out.spacy", "ner")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.conll"
    path.write_bytes("EU\tB-ORG\nK\xf6ln\tB-LOC\n".encode("latin1"))
    with pytest.raises(SpacyMlmError, match=f"{path}:2: not valid UTF-8"):
        list(read_conll_ner(path, vocab=NLP.vocab))


# ---------------------------------------------------------------------------------------------
# textcat
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,fmt",
    [
        ("sentence\tlabel\nit 's good . \t1\nbad . \t0\n", "header"),
        ("label\ttext\n1\tit 's good .\n0\tbad .\n", "header"),
        ("1\tit 's good .\n0\tbad .\n", "label-tab"),
        ("it 's good .\t1\nbad .\t0\n", "text-tab"),
        ("1 it 's good .\n0 bad .\n", "label-space"),
    ],
)
def test_textcat_formats(tmp_path, text, fmt):
    path = write(tmp_path, text)
    assert detect_textcat_format(path) == fmt
    stats = {}
    docs = list(read_textcat(path, nlp=NLP, stats=stats))
    assert [doc.text for doc in docs] == ["it 's good .", "bad ."]
    assert [doc.cats for doc in docs] == [{"0": 0.0, "1": 1.0}, {"0": 1.0, "1": 0.0}]
    assert stats["format"] == fmt and stats["multilabel"] is False and stats["labels"] == ["0", "1"]


def test_textcat_multilabel(tmp_path):
    path = write(tmp_path, "sports,politics\tthe minister ran a marathon\nsports\tgoal !\n\nweather\train again\n")
    stats = {}
    docs = list(read_textcat(path, nlp=NLP, stats=stats))
    assert stats["multilabel"] is True and stats["blank_lines"] == 1
    assert docs[0].cats == {"politics": 1.0, "sports": 1.0, "weather": 0.0}
    assert docs[2].cats == {"politics": 0.0, "sports": 0.0, "weather": 1.0}
    with pytest.raises(SpacyMlmError) as exc:
        list(read_textcat(path, multilabel=False, nlp=NLP))
    assert f"{path}:1: 2 labels 'sports,politics'" in str(exc.value) and "--multilabel" in str(exc.value)
    # --multilabel on a file with one label per line is reported as multilabel.
    single = write(tmp_path, "a\tx\nb\ty\n", "single.tsv")
    out = tmp_path / "single.spacy"
    counts = convert(single, out, "textcat", multilabel=True)
    assert counts["multilabel"] is True and counts["labels"] == {"a": 1, "b": 1}
    docs = list(DocBin().from_disk(out).get_docs(NLP.vocab))
    assert [doc.cats for doc in docs] == [{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}]


@pytest.mark.parametrize(
    "text,fmt,line,fragment",
    [
        ("sentence\tlabel\ngood\t1\nbad\t0\textra\n", "auto", 3, "expected 2 TAB-separated columns"),
        ("1\tgood\n0\t  \n", "auto", 2, "has a label but no text"),
        ("1 good\n0\n", "auto", 2, "has a label but no text"),
        ("1\tgood\n0,\tbad\n", "auto", 2, "bad label field '0,'"),
        ("good movie\t1\n", "label-tab", 1, "bad label field 'good movie'"),
        ("1\tgood\n", "header", 1, "expected a header line"),
    ],
)
def test_textcat_errors(tmp_path, text, fmt, line, fragment):
    path = write(tmp_path, text)
    with pytest.raises(SpacyMlmError) as exc:
        list(read_textcat(path, fmt=fmt, nlp=NLP))
    assert f"{path}:{line}: " in str(exc.value) and fragment in str(exc.value)


# ---------------------------------------------------------------------------------------------
# STS
# ---------------------------------------------------------------------------------------------

STS_SAMPLE = (
    'main-captions\tMSRvid\t2012test\t0000\t5.000\tA man is dancing.\tA man wearing a "hat" is dancing.\n'
    "main-news\theadlines\t2015\t0001\t0.500\tStocks fall.\tRain is coming.\tsource\tlicence\n"
)


def test_sts_round_trip(tmp_path):
    out = tmp_path / "sts.spacy"
    counts = convert(write(tmp_path, STS_SAMPLE, "sts-dev.csv"), out, "sts")
    assert counts["pairs"] == 2 and counts["docs"] == 4 and counts["extra_column_rows"] == 1
    docs = list(DocBin().from_disk(out).get_docs(NLP.vocab))
    assert [doc.text for doc in docs] == [
        "A man is dancing.",
        'A man wearing a "hat" is dancing.',
        "Stocks fall.",
        "Rain is coming.",
    ]
    assert [doc.user_data for doc in docs] == [
        {"pair_id": 0, "side": "a", "score": 5.0, "genre": "main-captions"},
        {"pair_id": 0, "side": "b", "score": 5.0, "genre": "main-captions"},
        {"pair_id": 1, "side": "a", "score": 0.5, "genre": "main-news"},
        {"pair_id": 1, "side": "b", "score": 0.5, "genre": "main-news"},
    ]


@pytest.mark.parametrize(
    "text,line,fragment",
    [
        ("genre\tfile\tyear\tid\tscore\ts1\ts2\n", 1, "the score (column 5) 'score' is not a number"),
        ("main\tf\t2012\t1\t4.0\tA man.\n", 1, "expected 7 TAB-separated columns"),
        ("main\tf\t2012\t1\t4.0\tA man.\tB\nmain\tf\t2012\t2\tnan\tA\tB\n", 2, "is not a number"),
        ("main\tf\t2012\t1\t4.0\t \tB\n", 1, "sentence1 is empty"),
    ],
)
def test_sts_errors(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    with pytest.raises(SpacyMlmError) as exc:
        list(read_sts(path, nlp=NLP))
    assert f"{path}:{line}: " in str(exc.value) and fragment in str(exc.value)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli(tmp_path):
    out = tmp_path / "ner.spacy"
    result = CliRunner().invoke(
        convert_command, [str(write(tmp_path, CONLL_4COL)), str(out), "--kind", "ner", "--n-sents", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "Wrote 2 docs" in result.output and "3 sentences, 16 tokens, 7 entities" in result.output
    assert "2 -DOCSTART- lines" in result.output and "6 IOB1 tags" in result.output
    assert len(DocBin().from_disk(out)) == 2

    path = write(tmp_path, "a,b\tx\nb\ty\n", "cats.tsv")
    result = CliRunner().invoke(convert_command, [str(path), str(tmp_path / "c.spacy"), "--kind", "textcat"])
    assert result.exit_code == 0 and "format label-tab, 2 labels, multilabel" in result.output
    written = (tmp_path / "c.spacy").read_bytes()
    result = CliRunner().invoke(
        convert_command, [str(path), str(tmp_path / "c.spacy"), "--kind", "textcat", "--exclusive", "--force"]
    )
    assert isinstance(result.exception, SpacyMlmError) and f"{path}:1: " in str(result.exception)
    assert (tmp_path / "c.spacy").read_bytes() == written  # a failed conversion leaves the output as it was

    result = CliRunner().invoke(convert_command, [str(path), str(out), "--kind", "ner", "--n-sents", "0"])
    assert result.exit_code == 2
    result = CliRunner().invoke(convert_command, [str(path), str(out)])
    assert result.exit_code == 2 and "--kind" in result.output


# ---------------------------------------------------------------------------------------------
# Real files
# ---------------------------------------------------------------------------------------------


@needs_data
def test_wnut17_counts(tmp_path):
    # The train file's first 2,394 sentence separators are a single TAB.
    docs = list(read_conll_ner(DATA_DIR / "ner" / "wnut17" / "wnut17train.conll", vocab=NLP.vocab))
    assert len(docs) == 3394
    assert sum(len(doc) for doc in docs) == 62730
    assert sum(len(doc.ents) for doc in docs) == 1975
    out = tmp_path / "dev.spacy"
    counts = convert(DATA_DIR / "ner" / "wnut17" / "emerging.dev.conll", out, "ner")
    assert (counts["docs"], counts["sentences"], counts["tokens"], counts["entities"]) == (1009, 1009, 15733, 836)
    docs = list(DocBin().from_disk(out).get_docs(NLP.vocab))
    assert len(docs) == 1009 and sum(len(doc.ents) for doc in docs) == 836


@needs_data
@pytest.mark.parametrize(
    "name,fmt,expected",
    [
        ("sst2-sentences/stsa.binary.train", "label-space", {"0": 3310, "1": 3610}),
        ("sst2-sentences/stsa.binary.dev", "label-space", {"0": 428, "1": 444}),
        ("sst2/dev.tsv", "header", {"0": 428, "1": 444}),
    ],
)
def test_sst2_counts(name, fmt, expected):
    stats = {}
    docs = list(read_textcat(DATA_DIR / "textcat" / name, nlp=NLP, stats=stats))
    assert stats["format"] == fmt and stats["multilabel"] is False
    assert len(docs) == sum(expected.values())
    assert {label: sum(doc.cats[label] == 1.0 for doc in docs) for label in expected} == expected
    assert all(sum(doc.cats.values()) == 1.0 for doc in docs)
    if fmt == "header":  # the trailing space before the TAB is stripped
        assert docs[0].text == "it 's a charming and often affecting journey ."


@needs_data
@pytest.mark.parametrize("name,pairs", [("sts-dev.csv", 1500), ("sts-train.csv", 5749)])
def test_sts_counts(name, pairs):
    docs = list(read_sts(DATA_DIR / "sts" / "stsbenchmark" / name, nlp=NLP))
    assert len(docs) == 2 * pairs
    assert docs[-1].user_data["pair_id"] == pairs - 1
    assert all(0.0 <= doc.user_data["score"] <= 5.0 for doc in docs)
    if name == "sts-dev.csv":
        assert docs[0].text == "A man with a hard hat is dancing." and docs[0].user_data["score"] == 5.0
        assert docs[1].text == "A man wearing a hard hat is dancing."
