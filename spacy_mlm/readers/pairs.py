"""Sentence pairs as spaCy Examples, for training and scoring `trf_similarity`.

A pair reaches the pipe as ONE Doc holding both sentences, ``sentence1 + " " + sentence2``,
with ``doc.spans["sim_pair"] = [sentence1, sentence2]`` and the gold score (a float, or None for
a positive pair without a score) in ``doc.user_data["sim_pair_score"]``. Why one Doc per pair:
spaCy trains on a stream of Examples that its batchers shuffle and sort by length, so two docs of
a pair could land in different batches; a Doc keeps the pair together, and spans and user_data
survive Doc.copy and DocBin(store_user_data=True). The transformer must encode the two spans as
two separate sequences, as sentence-transformers does (a bi-encoder: no attention between the
sentences); the span getter `spacy_mlm.pair_spans.v1` (spacy_mlm.pipes.similarity) does that.

    [corpora.train]
    @readers = "spacy_mlm.PairCorpus.v1"
    path = ${paths.train}

PATH is the output of ``spacy-mlm convert FILE OUT.spacy --kind sts`` (two docs per pair) or a
JSONL file with one pair per line: ``{"sentence1": ..., "sentence2": ..., "score": 4.2}``
(``score`` optional: lines without one are positive pairs, for MultipleNegativesRanking).
Scores must be finite and inside the reader's ``score_range`` (default 0..5, the STS Benchmark scale).
"""

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Tuple

import srsly
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import registry

from ..errors import SpacyMlmError
from .lines import PathLike, empty_error, quoted, read_lines
from .sts import PAIR_ID_KEY, SIDE_KEY, STS_SCORE_KEY, STS_SCORE_RANGE, check_score

PAIR_KEY = "sim_pair"  # doc.spans key of the two sentences
SCORE_KEY = "sim_pair_score"  # doc.user_data key of the gold score (None: a positive pair)


def make_pair_doc(sentence1: Doc, sentence2: Doc, score: Optional[float]) -> Doc:
    """One Doc with both sentences (joined by a space), their spans and the gold score; tokens only."""
    words = [t.text for t in sentence1] + [t.text for t in sentence2]
    spaces = [bool(t.whitespace_) for t in sentence1] + [bool(t.whitespace_) for t in sentence2]
    if len(sentence1):
        spaces[len(sentence1) - 1] = True
    doc = Doc(sentence1.vocab, words=words, spaces=spaces)
    doc.spans[PAIR_KEY] = [doc[: len(sentence1)], doc[len(sentence1) :]]
    doc.user_data[SCORE_KEY] = score
    return doc


def pair_example(doc: Doc) -> Example:
    """The Example of a pair doc: the predicted side has the spans (the transformer's span getter
    reads them) but not the gold score."""
    predicted = Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
    predicted.spans[PAIR_KEY] = [predicted[s.start : s.end] for s in doc.spans[PAIR_KEY]]
    return Example(predicted, doc)


def pair_score(doc: Doc) -> Optional[float]:
    return doc.user_data.get(SCORE_KEY)


def is_pair_doc(doc: Doc) -> bool:
    return PAIR_KEY in doc.spans and len(doc.spans[PAIR_KEY]) == 2


def read_pair_docs(path: PathLike, nlp: Any, score_range: Sequence[float] = STS_SCORE_RANGE) -> Iterator[Doc]:
    """Pair docs from a `spacy-mlm convert --kind sts` .spacy file or a JSONL file of pairs; a score
    outside score_range (or not finite) is an error naming the file and line (or pair)."""
    path = Path(path)
    if len(score_range) != 2 or not score_range[0] < score_range[1]:
        raise SpacyMlmError(f"score_range = {list(score_range)}: give [lowest, highest] with lowest < highest, e.g. [0, 5].")
    score_range = (float(score_range[0]), float(score_range[1]))
    if not path.is_file():
        raise SpacyMlmError(f"{path}: no such file: give a .spacy file from `spacy-mlm convert --kind sts` or a .jsonl of pairs.")
    if path.suffix == ".spacy":
        yield from _from_docbin(path, nlp, score_range)
    elif path.suffix in (".jsonl", ".json"):
        yield from _from_jsonl(path, nlp, score_range)
    else:
        raise SpacyMlmError(
            f"{path}: unknown pair file type {path.suffix!r}: use a .spacy file (`spacy-mlm convert FILE OUT.spacy "
            '--kind sts`) or a .jsonl with {"sentence1": ..., "sentence2": ..., "score": ...} per line.'
        )


# The end of a score error: how to allow another scale.
RANGE_FIX = (", or set the reader's score_range to the scale of your scores (e.g. [corpora.train] "
             "score_range = [-1, 1])")


def _from_docbin(path: Path, nlp: Any, score_range: Tuple[float, float]) -> Iterator[Doc]:
    docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    if not docs:
        raise empty_error(path, "sentence pairs")
    for a, b in zip(docs[0::2], docs[1::2]):
        ua, ub = a.user_data, b.user_data
        if ua.get(SIDE_KEY) != "a" or ub.get(SIDE_KEY) != "b" or ua.get(PAIR_ID_KEY) != ub.get(PAIR_ID_KEY):
            raise SpacyMlmError(
                f"{path}: doc {a.text[:60]!r} / {b.text[:60]!r} is not a sentence1/sentence2 pair (user_data side a/b "
                "with the same pair_id): make the file with `spacy-mlm convert FILE OUT.spacy --kind sts`."
            )
        score = ua.get(STS_SCORE_KEY)
        if score is not None:
            check_score(float(score), f"{path}: pair {ua.get(PAIR_ID_KEY)} ({a.text[:60]!r}): the score", score_range,
                        RANGE_FIX)
        yield make_pair_doc(a, b, score)
    if len(docs) % 2:
        raise SpacyMlmError(f"{path}: {len(docs)} docs, an odd number: the last pair lacks its sentence2.")


def _from_jsonl(path: Path, nlp: Any, score_range: Tuple[float, float]) -> Iterator[Doc]:
    n = 0
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        try:
            row = srsly.json_loads(line)
            sentences = (str(row["sentence1"]).strip(), str(row["sentence2"]).strip())
            score = None if row.get("score") is None else float(row["score"])
        except (ValueError, KeyError, TypeError) as e:
            raise SpacyMlmError(
                f'{path}:{lineno}: expected {{"sentence1": str, "sentence2": str, "score": number (optional)}}, '
                f"got {quoted(line)} ({type(e).__name__}: {e})."
            ) from None
        if not all(sentences):
            raise SpacyMlmError(f"{path}:{lineno}: empty sentence: remove the line or fill in the sentence.")
        if score is not None:
            check_score(score, f"{path}:{lineno}: the score", score_range, RANGE_FIX)
        n += 1
        yield make_pair_doc(nlp.make_doc(sentences[0]), nlp.make_doc(sentences[1]), score)
    if n == 0:
        raise empty_error(path, "sentence pairs")


@registry.readers("spacy_mlm.PairCorpus.v1")
def create_pair_corpus(
    path: Optional[Path], limit: int = 0, score_range: Sequence[float] = STS_SCORE_RANGE
) -> Callable[[Any], Iterable[Example]]:
    """Sentence pairs for trf_similarity (module docstring): `limit` > 0 keeps the first pairs.
    ``path = null`` (e.g. an unset ${paths.dev}) reads nothing. score_range: [lowest, highest] gold
    score (default [0, 5], the STS Benchmark scale); a score outside it is an error."""

    def corpus(nlp: Any) -> Iterator[Example]:
        if path is None:
            return
        for i, doc in enumerate(read_pair_docs(path, nlp, score_range)):
            if limit and i >= limit:
                break
            yield pair_example(doc)

    return corpus



@registry.readers("spacy_mlm.MultiTaskCorpus.v1")
def create_multitask_corpus(
    path: Optional[Path],
    pairs: Optional[Path] = None,
    max_length: int = 0,
    gold_preproc: bool = False,
    limit: int = 0,
    augmenter: Optional[Callable] = None,
    pairs_limit: int = 0,
    pairs_score_range: Sequence[float] = STS_SCORE_RANGE,
) -> Callable[[Any], Iterable[Example]]:
    """The annotated docs of spacy.Corpus.v1 at `path` (entities, cats) followed by the sentence
    pairs of spacy_mlm.PairCorpus.v1 at `pairs` (null: none), so that one `spacy train` run trains
    the task heads and trf_similarity together. spacy train shuffles each epoch's examples, so the
    batches mix them; a pipe gets no loss from docs without its annotation. The transformer needs
    the span getter spacy_mlm.pair_spans.v1 (strided windows for every doc that is not a pair).
    pairs_limit and pairs_score_range are PairCorpus.v1's limit and score_range for the pairs."""
    docs = registry.readers.get("spacy.Corpus.v1")(
        path, gold_preproc=gold_preproc, max_length=max_length, limit=limit, augmenter=augmenter
    )
    pair_corpus = create_pair_corpus(pairs, limit=pairs_limit, score_range=pairs_score_range)

    def corpus(nlp: Any) -> Iterator[Example]:
        yield from docs(nlp)
        yield from pair_corpus(nlp)

    return corpus
