"""Text-classification files: one example per line.

Layouts (detected from the first line unless forced): ``header`` (a header line naming a ``label``
column and a ``sentence`` or ``text`` column, e.g. GLUE SST-2 ``sentence<TAB>label``), ``label-tab``
(``label<TAB>text``), ``text-tab`` (``text<TAB>label``) and ``label-space`` (``label text``, the
first token is the label, e.g. Kim 2014 ``stsa.binary.*``). Text is stripped; no quoting is
interpreted. Several labels joined by ``,`` in the label field make a multi-label example.
"""

import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import SpacyMlmError
from .lines import PathLike, empty_error, get_nlp, quoted, read_lines

TEXTCAT_FORMATS = ("auto", "header", "label-tab", "text-tab", "label-space")
LABEL_RE = re.compile(r"^\S{1,50}$")
HEADER_TEXT_COLUMNS = ("sentence", "text")


def _is_header(fields: Sequence[str]) -> bool:
    names = [f.strip().lower() for f in fields]
    return len(names) >= 2 and "label" in names


def detect_textcat_format(path: PathLike) -> str:
    """The layout of a textcat file, from its first non-blank line: ``header`` when a TAB-split
    field is ``label``, else ``label-tab`` when the line has a TAB and the first field looks like
    a label (no whitespace, at most 50 characters), ``text-tab`` when the last field does, else
    ``label-space``."""
    for _, line in read_lines(path):
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
    raise empty_error(path, "examples")


def _parse_labels(field: str, path: PathLike, lineno: int, fmt: str) -> List[str]:
    labels = [label.strip() for label in field.split(",")]
    if not field.strip() or any(not LABEL_RE.match(label) for label in labels):
        raise SpacyMlmError(
            f"{path}:{lineno}: bad label field {quoted(field)} (format {fmt}): a label is 1-50 characters without "
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
    for lineno, line in read_lines(path):
        if not line.strip():
            stats["blank_lines"] += 1
            continue
        if not header_seen:
            names = [f.strip().lower() for f in line.split("\t")]
            if not _is_header(names):
                raise SpacyMlmError(
                    f"{path}:{lineno}: expected a header line with a `label` column (e.g. `sentence<TAB>label`) "
                    f"but found {quoted(line)}: pass another --format."
                )
            label_col = names.index("label")
            text_names = [n for n in HEADER_TEXT_COLUMNS if n in names]
            if text_names:
                text_col = names.index(text_names[0])
            elif len(names) == 2:
                text_col = 1 - label_col
            else:
                raise SpacyMlmError(
                    f"{path}:{lineno}: the header {quoted(line)} names no text column: call it `sentence` or `text`."
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
                    f"{len(fields)}: {quoted(line)}. Remove TABs from the text, or pass another --format."
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
            raise SpacyMlmError(f"{path}:{lineno}: the example has a label but no text: {quoted(line)}. Remove the line.")
        examples.append((lineno, text, labels))
    if not examples:
        raise empty_error(path, "examples")
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
            f"{path}:{lineno}: {len(labels)} labels {quoted(','.join(labels))} in an exclusive-class file "
            f"({len(multi)} such lines): pass --multilabel, or give each line one label."
        )
    stats["multilabel"] = bool(multilabel) or bool(multi)
    all_labels = sorted({label for _, _, labels in examples for label in labels})
    stats["labels"] = all_labels
    nlp = get_nlp(lang, nlp)
    texts = (text for _, text, _ in examples)
    for (_, _, labels), doc in zip(examples, nlp.tokenizer.pipe(texts)):
        doc.cats = {label: 1.0 if label in labels else 0.0 for label in all_labels}
        yield doc
