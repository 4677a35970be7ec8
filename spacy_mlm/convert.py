"""Convert NER, text-classification and STS data files to spaCy's binary `.spacy` (DocBin) format.

    spacy-mlm convert INPUT OUTPUT.spacy --kind ner|textcat|sts [--lang en] [--n-sents 1]
        [--format auto|header|label-tab|text-tab|label-space] [--multilabel/--exclusive]

Formats read:

- ``ner``: CoNLL/IOB, one token per line, the tag in the LAST column: 2 columns
  (``token<TAB>tag``, WNUT-17) or 4 columns (CoNLL-2003 ``token POS chunk tag``), split on
  TABs when the line has one, else on spaces. IOB1 and IOB2 are both read (IOB1 is
  rewritten to IOB2). Empty and whitespace-only lines end a sentence (WNUT-17's train file
  uses lines holding a single TAB, which ``spacy convert`` silently ignores). ``-DOCSTART-``
  lines (``-DOCSTART- -X- -X- O`` or ``-DOCSTART-<TAB>O``) start a new document and are no
  tokens.
- ``textcat``: one example per line, in one of these layouts (detected from the first line
  unless forced): ``header`` (a header line naming a ``label`` column and a ``sentence`` or
  ``text`` column, e.g. GLUE SST-2 ``sentence<TAB>label``), ``label-tab``
  (``label<TAB>text``), ``text-tab`` (``text<TAB>label``) and ``label-space``
  (``label text``, the first token is the label, e.g. Kim 2014 ``stsa.binary.*``). Text is
  stripped; no quoting is interpreted. Several labels joined by ``,`` in the label field make
  a multi-label example.
- ``sts``: STS Benchmark rows, tab-separated, no header, no quoting: ``genre, filename, year,
  id, score, sentence1, sentence2`` and optional extra columns, which are ignored.
"""

import re
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import click

from .errors import SpacyMlmError

KINDS = ("ner", "textcat", "sts")
TEXTCAT_FORMATS = ("auto", "header", "label-tab", "text-tab", "label-space")
DOCSTART = "-DOCSTART-"
TAG_RE = re.compile(r"^(O|[BI]-\S+)$")
LABEL_RE = re.compile(r"^\S{1,50}$")
HEADER_TEXT_COLUMNS = ("sentence", "text")
STS_COLUMNS = ("genre", "filename", "year", "id", "score", "sentence1", "sentence2")

DATA_SUFFIXES = (".conll", ".conllu", ".iob", ".tsv", ".csv", ".txt")

PathLike = Union[str, Path]


def _read_lines(path: PathLike) -> Iterator[Tuple[int, str]]:
    """(line number from 1, line without its line break) for each line of a UTF-8 file."""
    path = Path(path)
    if not path.exists():
        raise SpacyMlmError(f"{path}: no such file: check the path.")
    if path.is_dir():
        raise SpacyMlmError(f"{path} is a directory: give the path of one data file.")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise SpacyMlmError(
                    f"{path}:{lineno}: not valid UTF-8 ({e.reason} at byte {e.start} of the line): "
                    "re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
                ) from None
            yield lineno, line.rstrip("\r\n")


def _empty_error(path: PathLike, what: str) -> SpacyMlmError:
    return SpacyMlmError(f"{path}: the file holds no {what}: it is empty or blank. Check that this is the right file.")


def _get_nlp(lang: str, nlp: Any = None) -> Any:
    if nlp is not None:
        return nlp
    import spacy

    try:
        return spacy.blank(lang)
    except (ImportError, KeyError, ValueError) as e:
        raise SpacyMlmError(
            f"Unknown language code {lang!r} ({e}): pass a spaCy language code such as en or de."
        ) from None


# ---------------------------------------------------------------------------------------------
# NER
# ---------------------------------------------------------------------------------------------


def iob_to_iob2(tags: Sequence[str]) -> List[str]:
    """IOB1 or IOB2 tags of one sentence as IOB2: an ``I-X`` that does not continue an entity of
    type X (at the start, after ``O`` or after another type) becomes ``B-X``. IOB2 input is
    returned unchanged."""
    out: List[str] = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def _split_conll(line: str) -> List[str]:
    line = line.strip(" \t")
    if "\t" in line:
        return [part.strip(" ") for part in line.split("\t")]
    return [part for part in line.split(" ") if part]


def read_conll_sentences(
    path: PathLike, stats: Optional[Dict[str, Any]] = None
) -> Iterator[Tuple[bool, List[str], List[str]]]:
    """(starts_document, words, IOB2 tags) for each sentence of a CoNLL/IOB file.

    ``starts_document`` is True for the first sentence after a ``-DOCSTART-`` line (and for the
    first sentence of the file). Raises SpacyMlmError with ``file:line`` for a line with a
    different column count from the first token line, fewer than 2 columns, or a tag that is
    not ``O``, ``B-X`` or ``I-X``. ``stats`` (if given) gets ``docstart_lines`` and
    ``iob1_fixes`` (``I-`` tags rewritten as ``B-``).
    """
    stats = stats if stats is not None else {}
    stats.setdefault("docstart_lines", 0)
    stats.setdefault("iob1_fixes", 0)
    n_columns: Optional[int] = None
    first_token_line = 0
    words: List[str] = []
    tags: List[str] = []
    new_doc = True

    def flush() -> Iterator[Tuple[bool, List[str], List[str]]]:
        nonlocal words, tags, new_doc
        if words:
            fixed = iob_to_iob2(tags)
            stats["iob1_fixes"] += sum(a != b for a, b in zip(tags, fixed))
            yield new_doc, words, fixed
            new_doc = False
        words, tags = [], []

    for lineno, line in _read_lines(path):
        if not line.strip():
            yield from flush()
            continue
        parts = _split_conll(line)
        if parts[0] == DOCSTART:
            yield from flush()
            new_doc = True
            stats["docstart_lines"] += 1
            continue
        if len(parts) < 2:
            raise SpacyMlmError(
                f"{path}:{lineno}: expected a token and a tag (2 or more columns) but found {len(parts)} column: "
                f"{line!r}. Write `token<TAB>tag` (or `token POS chunk tag`) and end sentences with an empty line."
            )
        if n_columns is None:
            n_columns, first_token_line = len(parts), lineno
        elif len(parts) != n_columns:
            raise SpacyMlmError(
                f"{path}:{lineno}: expected {n_columns} columns (as on line {first_token_line}) but found "
                f"{len(parts)}: {line!r}. Give every token line the same columns, with the tag last; a token "
                "must not contain the column separator."
            )
        tag = parts[-1]
        if not TAG_RE.match(tag):
            raise SpacyMlmError(
                f"{path}:{lineno}: the tag {tag!r} is not IOB: write O, B-TYPE or I-TYPE in the last column "
                "(BILUO and bare types are not read)."
            )
        if not parts[0]:
            raise SpacyMlmError(f"{path}:{lineno}: the token is empty: {line!r}. Remove the line or fix the token.")
        words.append(parts[0])
        tags.append(tag)
    yield from flush()


def read_conll_ner(
    path: PathLike,
    n_sents: int = 1,
    lang: str = "en",
    vocab: Any = None,
    stats: Optional[Dict[str, Any]] = None,
) -> Iterator[Any]:
    """Docs with entities and sentence starts from a CoNLL/IOB file (see the module docstring).

    Each Doc holds ``n_sents`` sentences (fewer at the end of a document); a ``-DOCSTART-``
    line always starts a new Doc. Words are joined by single spaces. The entities come from
    the IOB tags (IOB1 is read as IOB2), every token gets a sentence start of True or False.
    """
    from spacy.tokens import Doc

    if n_sents < 1:
        raise SpacyMlmError(f"n_sents must be 1 or more, not {n_sents}.")
    if vocab is None:
        vocab = _get_nlp(lang).vocab
    group: List[Tuple[List[str], List[str]]] = []

    def make_doc() -> Any:
        words = [w for ws, _ in group for w in ws]
        ents = [t for _, ts in group for t in ts]
        sent_starts = [i == 0 for ws, _ in group for i in range(len(ws))]
        spaces = [True] * (len(words) - 1) + [False]
        return Doc(vocab, words=words, spaces=spaces, ents=ents, sent_starts=sent_starts)

    n_read = 0
    for new_doc, words, tags in read_conll_sentences(path, stats):
        n_read += 1
        if group and (new_doc or len(group) >= n_sents):
            yield make_doc()
            group = []
        group.append((words, tags))
    if group:
        yield make_doc()
    if n_read == 0:
        raise _empty_error(path, "token lines")


# ---------------------------------------------------------------------------------------------
# textcat
# ---------------------------------------------------------------------------------------------


def _is_header(fields: Sequence[str]) -> bool:
    names = [f.strip().lower() for f in fields]
    return len(names) >= 2 and "label" in names


def detect_textcat_format(path: PathLike) -> str:
    """The layout of a textcat file, from its first non-blank line: ``header`` when a TAB-split
    field is ``label``, else ``label-tab`` when the line has a TAB and the first field looks like
    a label (no whitespace, at most 50 characters), ``text-tab`` when the last field does, else
    ``label-space``."""
    for _, line in _read_lines(path):
        if not line.strip():
            continue
        if "\t" in line:
            fields = line.split("\t")
            if _is_header(fields):
                return "header"
            if LABEL_RE.match(fields[0].strip()):
                return "label-tab"
            if LABEL_RE.match(fields[-1].strip()):
                return "text-tab"
        return "label-space"
    raise _empty_error(path, "examples")


def _parse_labels(field: str, path: PathLike, lineno: int, fmt: str) -> List[str]:
    labels = [label.strip() for label in field.split(",")]
    if not field.strip() or any(not LABEL_RE.match(label) for label in labels):
        raise SpacyMlmError(
            f"{path}:{lineno}: bad label field {field!r} (format {fmt}): a label is 1-50 characters without "
            "spaces, several labels are joined by `,`. If the file has another layout, pass --format."
        )
    return list(dict.fromkeys(labels))


def read_textcat_examples(
    path: PathLike, fmt: str = "auto", stats: Optional[Dict[str, Any]] = None
) -> List[Tuple[int, str, List[str]]]:
    """(line number, text, labels) for each example of a textcat file; blank lines are skipped.

    ``fmt`` is one of ``auto``, ``header``, ``label-tab``, ``text-tab``, ``label-space``.
    ``stats`` (if given) gets ``format`` (the one used) and ``blank_lines`` (skipped).
    """
    if fmt not in TEXTCAT_FORMATS:
        raise SpacyMlmError(f"Unknown textcat format {fmt!r}: use one of {', '.join(TEXTCAT_FORMATS)}.")
    if fmt == "auto":
        fmt = detect_textcat_format(path)
    stats = stats if stats is not None else {}
    stats["format"] = fmt
    stats["blank_lines"] = 0
    examples: List[Tuple[int, str, List[str]]] = []
    text_col = label_col = n_fields = -1
    header_seen = fmt != "header"
    for lineno, line in _read_lines(path):
        if not line.strip():
            stats["blank_lines"] += 1
            continue
        if not header_seen:
            names = [f.strip().lower() for f in line.split("\t")]
            if not _is_header(names):
                raise SpacyMlmError(
                    f"{path}:{lineno}: expected a header line with a `label` column (e.g. `sentence<TAB>label`) "
                    f"but found {line!r}: pass another --format."
                )
            label_col = names.index("label")
            text_names = [n for n in HEADER_TEXT_COLUMNS if n in names]
            if text_names:
                text_col = names.index(text_names[0])
            elif len(names) == 2:
                text_col = 1 - label_col
            else:
                raise SpacyMlmError(
                    f"{path}:{lineno}: the header {line!r} names no text column: call it `sentence` or `text`."
                )
            n_fields = len(names)
            header_seen = True
            continue
        if fmt == "label-space":
            parts = line.strip().split(None, 1)
            label_field, text = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        else:
            fields = line.split("\t")
            want = n_fields if fmt == "header" else 2
            if len(fields) != want:
                raise SpacyMlmError(
                    f"{path}:{lineno}: expected {want} TAB-separated columns (format {fmt}) but found "
                    f"{len(fields)}: {line[:200]!r}. Remove TABs from the text, or pass another --format."
                )
            if fmt == "header":
                label_field, text = fields[label_col], fields[text_col]
            elif fmt == "label-tab":
                label_field, text = fields[0], fields[1]
            else:
                label_field, text = fields[1], fields[0]
            text = text.strip()
        labels = _parse_labels(label_field, path, lineno, fmt)
        if not text:
            raise SpacyMlmError(f"{path}:{lineno}: the example has a label but no text: {line!r}. Remove the line.")
        examples.append((lineno, text, labels))
    if not examples:
        raise _empty_error(path, "examples")
    return examples


def read_textcat(
    path: PathLike,
    fmt: str = "auto",
    multilabel: Optional[bool] = None,
    lang: str = "en",
    nlp: Any = None,
    stats: Optional[Dict[str, Any]] = None,
) -> Iterator[Any]:
    """Docs with ``doc.cats`` from a textcat file (see :func:`read_textcat_examples`).

    Every doc gets all the labels seen in the file: 1.0 for its own label(s), 0.0 for the others.
    ``multilabel``: None detects it (multi-label when any example has several labels), False
    raises SpacyMlmError (with ``file:line``) for an example with several labels, True allows
    them. ``stats`` gets ``format``, ``blank_lines``, ``labels`` (sorted) and ``multilabel``.
    The text is tokenized with ``nlp`` (default ``spacy.blank(lang)``).
    """
    stats = stats if stats is not None else {}
    examples = read_textcat_examples(path, fmt, stats)
    multi = [(lineno, labels) for lineno, _, labels in examples if len(labels) > 1]
    if multilabel is False and multi:
        lineno, labels = multi[0]
        raise SpacyMlmError(
            f"{path}:{lineno}: {len(labels)} labels {','.join(labels)!r} in an exclusive-class file "
            f"({len(multi)} such lines): pass --multilabel, or give each line one label."
        )
    stats["multilabel"] = bool(multilabel) or bool(multi)
    all_labels = sorted({label for _, _, labels in examples for label in labels})
    stats["labels"] = all_labels
    nlp = _get_nlp(lang, nlp)
    texts = (text for _, text, _ in examples)
    for (_, _, labels), doc in zip(examples, nlp.tokenizer.pipe(texts)):
        doc.cats = {label: 1.0 if label in labels else 0.0 for label in all_labels}
        yield doc


# ---------------------------------------------------------------------------------------------
# STS
# ---------------------------------------------------------------------------------------------


def read_sts_rows(path: PathLike, stats: Optional[Dict[str, Any]] = None) -> Iterator[Dict[str, Any]]:
    """Dicts with the 7 STS Benchmark columns (``score`` as float) and ``line``, one per row.

    Columns after the 7th are ignored (``stats["extra_column_rows"]`` counts those rows).
    Raises SpacyMlmError with ``file:line`` for fewer than 7 columns, a score that is not a
    number, or an empty sentence.
    """
    stats = stats if stats is not None else {}
    stats["extra_column_rows"] = 0
    n = 0
    for lineno, line in _read_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < len(STS_COLUMNS):
            raise SpacyMlmError(
                f"{path}:{lineno}: expected 7 TAB-separated columns ({', '.join(STS_COLUMNS)}) but found "
                f"{len(fields)}: {line[:200]!r}. STS Benchmark files are TAB-separated without a header."
            )
        if len(fields) > len(STS_COLUMNS):
            stats["extra_column_rows"] += 1
        row: Dict[str, Any] = dict(zip(STS_COLUMNS, fields))
        try:
            row["score"] = float(row["score"])
        except ValueError:
            row["score"] = float("nan")
        if row["score"] != row["score"]:
            raise SpacyMlmError(
                f"{path}:{lineno}: the score (column 5) {fields[4]!r} is not a number: "
                "columns are genre, filename, year, id, score, sentence1, sentence2 (is there a header line? remove it)."
            )
        for side in ("sentence1", "sentence2"):
            row[side] = row[side].strip()
            if not row[side]:
                raise SpacyMlmError(f"{path}:{lineno}: {side} is empty: remove the row or fill in the sentence.")
        row["line"] = lineno
        n += 1
        yield row
    if n == 0:
        raise _empty_error(path, "sentence pairs")


def read_sts(
    path: PathLike, lang: str = "en", nlp: Any = None, stats: Optional[Dict[str, Any]] = None
) -> Iterator[Any]:
    """Two docs per STS pair, in file order: sentence1 then sentence2.

    Each doc has ``doc.user_data`` = ``{"pair_id": i, "side": "a" | "b", "score": float,
    "genre": str}`` where ``i`` counts the pairs of the file from 0. Regroup with
    ``zip(docs[0::2], docs[1::2])``. Save with ``DocBin(store_user_data=True)``.
    """
    nlp = _get_nlp(lang, nlp)
    pair_id = 0
    for row in read_sts_rows(path, stats):
        for side, key in (("a", "sentence1"), ("b", "sentence2")):
            doc = nlp.make_doc(row[key])
            doc.user_data.update({"pair_id": pair_id, "side": side, "score": row["score"], "genre": row["genre"]})
            yield doc
        pair_id += 1


# ---------------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------------


def convert(
    input_path: PathLike,
    output_path: PathLike,
    kind: str,
    lang: str = "en",
    n_sents: int = 1,
    fmt: str = "auto",
    multilabel: Optional[bool] = None,
) -> Dict[str, Any]:
    """Read INPUT as ``kind`` (ner, textcat, sts) and write the docs as a DocBin to OUTPUT.

    OUTPUT that is an existing directory gets ``<input name>.spacy`` inside it (without a
    ``.conll``/``.tsv``/``.csv``/``.txt``/``.iob`` suffix: ``dev.tsv`` -> ``dev.spacy``,
    ``stsa.binary.dev`` -> ``stsa.binary.dev.spacy``). ``n_sents``
    applies to ner, ``fmt`` and ``multilabel`` to textcat. Returns the counts: always ``kind``,
    ``input``, ``output``, ``docs``; ner adds ``sentences``, ``tokens``, ``entities``,
    ``labels`` (entities per type), ``docstart_lines``, ``iob1_fixes``; textcat adds
    ``labels`` (positive examples per label), ``format``, ``multilabel``; sts adds ``pairs``.
    """
    from spacy.tokens import DocBin

    if kind not in KINDS:
        raise SpacyMlmError(f"Unknown kind {kind!r}: use one of {', '.join(KINDS)}.")
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.is_dir():
        name = input_path.stem if input_path.suffix.lower() in DATA_SUFFIXES else input_path.name
        output_path = output_path / (name + ".spacy")
    stats: Dict[str, Any] = {}
    counts: Dict[str, Any] = {"kind": kind, "input": str(input_path), "output": str(output_path)}
    labels: Counter = Counter()
    if kind == "ner":
        docs = list(read_conll_ner(input_path, n_sents=n_sents, lang=lang, stats=stats))
        for doc in docs:
            labels.update(ent.label_ for ent in doc.ents)
        counts.update(
            docs=len(docs),
            sentences=sum(1 for doc in docs for _ in doc.sents),
            tokens=sum(len(doc) for doc in docs),
            entities=sum(labels.values()),
            labels=dict(sorted(labels.items())),
            docstart_lines=stats["docstart_lines"],
            iob1_fixes=stats["iob1_fixes"],
        )
    elif kind == "textcat":
        docs = list(read_textcat(input_path, fmt=fmt, multilabel=multilabel, lang=lang, stats=stats))
        for doc in docs:
            labels.update(label for label, value in doc.cats.items() if value == 1.0)
        counts.update(
            docs=len(docs),
            labels={label: labels[label] for label in stats["labels"]},
            format=stats["format"],
            multilabel=stats["multilabel"],
        )
    else:
        docs = list(read_sts(input_path, lang=lang, stats=stats))
        counts.update(docs=len(docs), pairs=len(docs) // 2, extra_column_rows=stats["extra_column_rows"])
    output_path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs, store_user_data=kind == "sts").to_disk(output_path)
    return counts


@click.command("convert")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.argument("output_path", metavar="OUTPUT", type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(KINDS), required=True, help="What the file holds.")
@click.option("--lang", default="en", show_default=True, help="spaCy language code for the vocab and tokenizer.")
@click.option("--n-sents", type=click.IntRange(min=1), default=1, show_default=True, help="ner: sentences per doc.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(TEXTCAT_FORMATS),
    default="auto",
    show_default=True,
    help="textcat: the line layout (auto detects it from the first line).",
)
@click.option(
    "--multilabel/--exclusive",
    default=None,
    help="textcat: allow several `,`-joined labels per line, or reject them (default: detect).",
)
def convert_command(
    input_path: Path, output_path: Path, kind: str, lang: str, n_sents: int, fmt: str, multilabel: Optional[bool]
) -> None:
    """Convert a NER (CoNLL/IOB), textcat or STS Benchmark file to a .spacy DocBin.

    \b
    ner:     token<TAB>tag or `token POS chunk tag`, IOB1/IOB2, -DOCSTART-, blank lines end sentences
    textcat: `sentence<TAB>label` with header (GLUE), label<TAB>text, text<TAB>label, or `label text`
    sts:     genre, filename, year, id, score, sentence1, sentence2 (TAB-separated, no header)
    """
    from wasabi import msg

    counts = convert(input_path, output_path, kind, lang=lang, n_sents=n_sents, fmt=fmt, multilabel=multilabel)
    msg.good(f"Wrote {counts['docs']:,} docs to {counts['output']}")
    if kind == "ner":
        msg.info(
            f"{counts['sentences']:,} sentences, {counts['tokens']:,} tokens, {counts['entities']:,} entities"
            + (f", {counts['docstart_lines']:,} -DOCSTART- lines" if counts["docstart_lines"] else "")
            + (f", {counts['iob1_fixes']:,} IOB1 tags rewritten as B-" if counts["iob1_fixes"] else "")
        )
    elif kind == "textcat":
        mode = "multilabel" if counts["multilabel"] else "exclusive"
        msg.info(f"format {counts['format']}, {len(counts['labels'])} labels, {mode}")
    else:
        msg.info(
            f"{counts['pairs']:,} pairs (2 docs each: user_data pair_id, side a/b, score, genre)"
            + (
                f"; extra columns ignored on {counts['extra_column_rows']:,} rows"
                if counts["extra_column_rows"]
                else ""
            )
        )
    if kind in ("ner", "textcat"):
        rows = [(label, f"{n:,}") for label, n in counts["labels"].items()]
        msg.table(rows, header=("label", "entities" if kind == "ner" else "docs"), divider=True)
