"""Text classification as parallel files: the TweetEval layout.

A text file holds one example per line; line i of a labels file is the class of line i of the
text file; an optional mapping file names the classes, one ``id<TAB>name`` line each (e.g.
TweetEval's ``train_text.txt``, ``train_labels.txt`` and ``mapping.txt``). Classes are exclusive:
one class per example. With a mapping, the labels file holds ids and every doc gets all the
mapping's names in ``doc.cats`` (in the mapping's order, classes absent from the files included);
without one, the labels are the class names as they are. Lines are stripped (TweetEval text lines
end with a space, CRLF reads as LF) and blank lines at the end of a file are not examples. A text
line that is empty in the middle of the file is an error unless ``skip_empty_text`` leaves those
examples (and their labels) out: TweetEval hate has such lines.
"""

from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..errors import SpacyMlmError
from .lines import PathLike, empty_error, get_nlp, quoted, read_lines
from .textcat import LABEL_RE


def _stripped_lines(path: PathLike) -> List[str]:
    """The file's lines, stripped, without the blank lines at its end."""
    lines = [line.strip() for _, line in read_lines(path)]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def read_label_mapping(path: PathLike) -> Dict[str, str]:
    """{id: name} from a file of ``id<TAB>name`` lines (``id name`` without a TAB); blank lines
    are skipped. The order of the file is kept: it is the order of ``doc.cats``."""
    mapping: Dict[str, str] = {}
    where: Dict[str, int] = {}
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.strip().split(None, 1))]
        if len(fields) != 2 or not all(fields):
            raise SpacyMlmError(
                f"{path}:{lineno}: expected `id<TAB>name` but found {quoted(line)}: write one class per line, its id "
                "as the labels file writes it, a TAB, then its name."
            )
        class_id, name = fields
        if class_id in mapping:
            raise SpacyMlmError(
                f"{path}:{lineno}: the id {quoted(class_id)} is already on line {where[class_id]}: give each id one line."
            )
        if name in mapping.values():
            first = next(i for i, n in mapping.items() if n == name)
            raise SpacyMlmError(
                f"{path}:{lineno}: the name {quoted(name)} is already the name of id {quoted(first)} (line {where[first]}): "
                "give each class its own name."
            )
        mapping[class_id] = name
        where[class_id] = lineno
    if not mapping:
        raise empty_error(path, "classes")
    return mapping


def read_parallel_examples(
    text_path: PathLike,
    labels_path: PathLike,
    mapping_path: Optional[PathLike] = None,
    skip_empty_text: bool = False,
    stats: Optional[Dict[str, Any]] = None,
) -> List[Tuple[int, str, str]]:
    """(line number, text, class name) for each example of a text file and its labels file.

    ``stats`` (if given) gets ``format`` (``text+labels``), ``labels`` (the class names: the
    mapping's, in its order, else the labels seen, sorted) and ``skipped_empty_text`` (lines).
    """
    stats = stats if stats is not None else {}
    texts = _stripped_lines(text_path)
    labels = _stripped_lines(labels_path)
    mapping = read_label_mapping(mapping_path) if mapping_path is not None else None
    if not texts and not labels:
        raise empty_error(text_path, "examples")
    if len(texts) != len(labels):
        raise SpacyMlmError(
            f"{text_path} has {len(texts):,} line{'s' if len(texts) != 1 else ''} but {labels_path} has "
            f"{len(labels):,} (blank lines at the end "
            "not counted): line i of the labels file is the class of line i of the text file, so both need the "
            "same number of lines. Check that the two files belong together."
        )
    examples: List[Tuple[int, str, str]] = []
    empty: List[int] = []
    for lineno, (text, label) in enumerate(zip(texts, labels), start=1):
        if not label:
            raise SpacyMlmError(
                f"{labels_path}:{lineno}: the label is empty: line {lineno} holds the class of line {lineno} of "
                f"{text_path}. Write its label, or remove the line from both files."
            )
        if mapping is not None and label not in mapping:
            raise SpacyMlmError(
                f"{labels_path}:{lineno}: the label {quoted(label)} is not an id of {mapping_path} (known ids: "
                f"{', '.join(mapping)}): fix the label, or add a line `{label}<TAB>name` to the mapping."
            )
        if mapping is None and not LABEL_RE.match(label):
            raise SpacyMlmError(
                f"{labels_path}:{lineno}: bad label {quoted(label)}: a label is 1-50 characters without spaces, one per "
                "line. Check that this is the labels file (given with --labels) and the text file the other one."
            )
        if not text:
            empty.append(lineno)
            continue
        examples.append((lineno, text, mapping[label] if mapping is not None else label))
    if empty and not skip_empty_text:
        shown = ", ".join(str(n) for n in empty[:10]) + (", ..." if len(empty) > 10 else "")
        raise SpacyMlmError(
            f"{text_path}:{empty[0]}: the text is empty but {labels_path}:{empty[0]} gives it the label "
            f"{quoted(labels[empty[0] - 1])} ({len(empty):,} empty text line{'s' if len(empty) > 1 else ''}: {shown}): "
            "remove those lines from both files, or pass --skip-empty-text to leave these examples out."
        )
    if not examples:
        raise empty_error(text_path, "examples")
    stats["format"] = "text+labels"
    stats["labels"] = list(mapping.values()) if mapping is not None else sorted({name for _, _, name in examples})
    stats["skipped_empty_text"] = len(empty)
    return examples


def read_parallel_textcat(
    text_path: PathLike,
    labels_path: PathLike,
    mapping_path: Optional[PathLike] = None,
    skip_empty_text: bool = False,
    lang: str = "en",
    nlp: Any = None,
    stats: Optional[Dict[str, Any]] = None,
) -> Iterator[Any]:
    """Docs with one-hot ``doc.cats`` over all class names (see :func:`read_parallel_examples`).

    ``stats`` also gets ``multilabel`` (False). The text is tokenized with ``nlp`` (default
    ``spacy.blank(lang)``).
    """
    stats = stats if stats is not None else {}
    examples = read_parallel_examples(text_path, labels_path, mapping_path, skip_empty_text, stats)
    stats["multilabel"] = False
    names = stats["labels"]
    nlp = get_nlp(lang, nlp)
    for (_, _, name), doc in zip(examples, nlp.tokenizer.pipe(text for _, text, _ in examples)):
        doc.cats = {label: 1.0 if label == name else 0.0 for label in names}
        yield doc
