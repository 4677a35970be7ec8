"""Convert NER, text-classification and STS data files to spaCy's binary `.spacy` (DocBin) format.

    spacy-mlm convert INPUT OUTPUT.spacy --kind ner|textcat|sts [--lang en] [--n-sents 1]
        [--format auto|header|label-tab|text-tab|label-space] [--multilabel/--exclusive]
    spacy-mlm convert TEXT_FILE OUTPUT.spacy --kind textcat --labels LABEL_FILE [--mapping MAPPING_FILE]
        [--skip-empty-text]

The formats read are described in spacy_mlm/readers/ (conll.py, textcat.py, parallel_labels.py,
sts.py); the readers
are importable from here too.
"""

from collections import Counter
from pathlib import Path
from typing import Any, Dict, Optional

import click

from .errors import SpacyMlmError
from .readers import (  # noqa: F401 - re-exported: the readers' import path for scripts
    TEXTCAT_FORMATS,
    detect_textcat_format,
    iob_to_iob2,
    read_conll_ner,
    read_conll_sentences,
    read_label_mapping,
    read_parallel_examples,
    read_parallel_textcat,
    read_sts,
    read_sts_rows,
    read_textcat,
    read_textcat_examples,
)
from .readers.lines import PathLike
from .safe_output import check_output
from .util import atomic_write_bytes, disk_writes

KINDS = ("ner", "textcat", "sts")
DATA_SUFFIXES = (".conll", ".conllu", ".iob", ".tsv", ".csv", ".txt")


def convert(
    input_path: PathLike,
    output_path: PathLike,
    kind: str,
    lang: str = "en",
    n_sents: int = 1,
    fmt: str = "auto",
    multilabel: Optional[bool] = None,
    labels_path: Optional[PathLike] = None,
    mapping_path: Optional[PathLike] = None,
    skip_empty_text: bool = False,
    force: bool = False,
) -> Dict[str, Any]:
    """Read INPUT as ``kind`` (ner, textcat, sts) and write the docs as a DocBin to OUTPUT.

    OUTPUT that is an existing directory gets ``<input name>.spacy`` inside it (without a
    ``.conll``/``.tsv``/``.csv``/``.txt``/``.iob`` suffix: ``dev.tsv`` -> ``dev.spacy``,
    ``stsa.binary.dev`` -> ``stsa.binary.dev.spacy``). The output must not be an input, and an
    existing output file is replaced (atomically) only with ``force`` (spacy_mlm/safe_output.py). ``n_sents``
    applies to ner, ``fmt`` and ``multilabel`` to textcat. ``labels_path`` makes INPUT a text file
    whose line i has the class on line i of ``labels_path`` (exclusive; ids named by
    ``mapping_path``: spacy_mlm/readers/parallel_labels.py). Returns the counts: always ``kind``,
    ``input``, ``output``, ``docs``; ner adds ``sentences``, ``tokens``, ``entities``,
    ``labels`` (entities per type), ``docstart_lines``, ``iob1_fixes``; textcat adds
    ``labels`` (positive examples per label), ``format``, ``multilabel`` (with ``labels_path``
    also ``skipped_empty_text``); sts adds ``pairs``.
    """
    from spacy.tokens import DocBin

    if kind not in KINDS:
        raise SpacyMlmError(f"Unknown kind {kind!r}: use one of {', '.join(KINDS)}.")
    _check_labels_options(kind, fmt, multilabel, labels_path, mapping_path, skip_empty_text)
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.is_dir():
        name = input_path.stem if input_path.suffix.lower() in DATA_SUFFIXES else input_path.name
        output_path = output_path / (name + ".spacy")
    inputs = [p for p in (input_path, labels_path, mapping_path) if p is not None]
    check_output(output_path, [Path(p) for p in inputs], command="spacy-mlm convert", force=force, kind="file")
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
        if labels_path is not None:
            docs = list(read_parallel_textcat(input_path, labels_path, mapping_path, skip_empty_text, lang, stats=stats))
            counts["skipped_empty_text"] = stats["skipped_empty_text"]
        else:
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
    data = DocBin(docs=docs, store_user_data=kind == "sts").to_bytes()
    with disk_writes("the .spacy file", output_path):
        output_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(output_path, data)
    return counts


def _check_labels_options(
    kind: str, fmt: str, multilabel: Optional[bool], labels_path: Any, mapping_path: Any, skip_empty_text: bool
) -> None:
    if labels_path is None:
        if mapping_path is not None or skip_empty_text:
            raise SpacyMlmError("--mapping and --skip-empty-text go with --labels LABEL_FILE: add it, or leave them out.")
    elif kind != "textcat":
        raise SpacyMlmError(f"--labels is for --kind textcat (a text file and its labels file), not --kind {kind}.")
    elif fmt != "auto":
        raise SpacyMlmError(
            f"--format {fmt} is the layout of a file with a label and a text on each line; with --labels, INPUT "
            "holds only the texts: leave out --format."
        )
    elif multilabel:
        raise SpacyMlmError("--labels gives one class per line (exclusive classes): leave out --multilabel.")


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
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(path_type=Path),
    default=None,
    help="textcat: INPUT holds only texts, one per line; line i of this file is the class of line i (TweetEval).",
)
@click.option(
    "--mapping",
    "mapping_path",
    type=click.Path(path_type=Path),
    default=None,
    help="textcat with --labels: `id<TAB>name` lines; the labels are ids, the docs get the names.",
)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option(
    "--skip-empty-text", is_flag=True, help="textcat with --labels: leave out examples whose text line is empty."
)
def convert_command(
    input_path: Path,
    output_path: Path,
    kind: str,
    lang: str,
    n_sents: int,
    fmt: str,
    multilabel: Optional[bool],
    labels_path: Optional[Path],
    mapping_path: Optional[Path],
    skip_empty_text: bool,
    force: bool,
) -> None:
    """Convert a NER (CoNLL/IOB), textcat or STS Benchmark file to a .spacy DocBin.

    OUTPUT: a .spacy file, or a directory to write <INPUT name>.spacy into. An existing file is
    replaced only with --force; OUTPUT is never INPUT.

    \b
    ner:     token<TAB>tag or `token POS chunk tag`, IOB1/IOB2, -DOCSTART-, blank lines end sentences
    textcat: `sentence<TAB>label` with header (GLUE), label<TAB>text, text<TAB>label, or `label text`;
             with --labels: a text file, a labels file, an `id<TAB>name` --mapping (TweetEval)
    sts:     genre, filename, year, id, score, sentence1, sentence2 (TAB-separated, no header)

    \b
    TweetEval's official metric in `spacy evaluate` (after `spacy train configs/textcat.cfg`):
    emotion, hate, offensive: cats_score (macro F); irony: cats_f_per_type irony f, also cats_score
    when trained with --initialize.components.textcat '{"positive_label": "irony"}'.
    """
    from wasabi import msg

    counts = convert(
        input_path, output_path, kind, lang=lang, n_sents=n_sents, fmt=fmt, multilabel=multilabel,
        labels_path=labels_path, mapping_path=mapping_path, skip_empty_text=skip_empty_text, force=force,
    )
    msg.good(f"Wrote {counts['docs']:,} docs to {counts['output']}")
    if kind == "ner":
        msg.info(
            f"{counts['sentences']:,} sentences, {counts['tokens']:,} tokens, {counts['entities']:,} entities"
            + (f", {counts['docstart_lines']:,} -DOCSTART- lines" if counts["docstart_lines"] else "")
            + (f", {counts['iob1_fixes']:,} IOB1 tags rewritten as B-" if counts["iob1_fixes"] else "")
        )
    elif kind == "textcat":
        mode = "multilabel" if counts["multilabel"] else "exclusive"
        skipped = counts.get("skipped_empty_text")
        msg.info(
            f"format {counts['format']}, {len(counts['labels'])} labels, {mode}"
            + (f"; {skipped:,} example{'s' if skipped > 1 else ''} with empty text left out" if skipped else "")
        )
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
