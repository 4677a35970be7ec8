"""trf_similarity: doc/span/token vectors and cosine similarity from the shared transformer.

The vectors are pooled from `doc._.trf_data` (no second encoder pass) and exposed through
spaCy's user hooks, so `doc.vector`, `span.vector`, `token.vector`, `has_vector` and
`.similarity()` work as users expect.
"""

from functools import partial
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc

from ..errors import SpacyMlmError
from ..util import IN_PLACE_HINT, atomic_write_text, disk_writes
from ._runtime import prepare_pipe_process
from ._upstream import get_upstream_transformer
from ._windows import _to_numpy, doc_pieces, token_pieces

POOLINGS = ("mean", "cls", "max")
# (doc vector, per-token vectors, per-token "has wordpieces" flags)
DocVectors = Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]


def install_extensions() -> None:
    for name in ("trf_vector", "trf_token_has_vector", "trf_vector_config"):
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=None)


@Language.factory(
    "trf_similarity",
    assigns=["doc.tensor", "doc._.trf_vector"],
    requires=["doc._.trf_data"],
    default_config={"pooling": "mean", "normalize": True, "upstream": "transformer"},
)
def make_trf_similarity(nlp: Language, name: str, pooling: str, normalize: bool, upstream: str) -> "TrfSimilarity":
    """Vectors and `.similarity()` for Doc, Span and Token from the shared transformer.

    pooling (str): "mean" (wordpieces weighted by the attention mask, as sentence-transformers
        does), "cls" (the first wordpiece; doc level only, spans and tokens use mean) or "max".
    normalize (bool): L2-normalize the vectors.
    """
    prepare_pipe_process()
    return TrfSimilarity(nlp, name, pooling=pooling, normalize=normalize, upstream=upstream)


class TrfSimilarity(Pipe):
    def __init__(
        self, nlp: Language, name: str = "trf_similarity", *, pooling: str = "mean",
        normalize: bool = True, upstream: str = "transformer",
    ) -> None:
        if pooling not in POOLINGS:
            raise SpacyMlmError(f"trf_similarity pooling={pooling!r} is not supported: use one of {POOLINGS}.")
        self.name = name
        self.nlp = nlp
        self.vocab = nlp.vocab
        self.pooling = pooling
        self.normalize = normalize
        self.upstream = upstream
        self.cfg = {"width": 0}
        install_extensions()

    def initialize(self, get_examples=None, *, nlp: Optional[Language] = None) -> None:
        if nlp is not None:
            self.nlp = nlp
        transformer = get_upstream_transformer(self.nlp, self.upstream, self.name)
        if transformer.model.has_dim("nO") and transformer.model.get_dim("nO"):
            self.cfg["width"] = int(transformer.model.get_dim("nO"))

    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128):
        for docs in util.minibatch(stream, size=batch_size):
            self.set_annotations(docs, self.predict(docs))
            yield from docs

    def predict(self, docs: Iterable[Doc]) -> List[DocVectors]:
        """Pooled doc vector and token vectors for each doc. Does not modify the docs."""
        return [self._pool(doc) for doc in docs]

    def _pool(self, doc: Doc) -> DocVectors:
        trf_data = doc._.get("trf_data") if doc.has_extension("trf_data") else None
        hidden = None if trf_data is None else trf_data.model_output.get("last_hidden_state")
        if hidden is None or hidden.size == 0 or len(doc) == 0:
            if trf_data is None and len(doc):
                raise SpacyMlmError(
                    f"'{self.name}' got a doc without doc._.trf_data: add the '{self.upstream}' "
                    f"component before it (nlp.add_pipe('transformer', before='{self.name}'))."
                )
            width = self.cfg["width"]
            return (numpy.zeros((width,), "f"), numpy.zeros((len(doc), width), "f"), numpy.zeros((len(doc),), bool))
        hidden = _to_numpy(hidden).astype("f", copy=False)
        width = hidden.shape[-1]
        self.cfg["width"] = int(width)
        flat_hidden = hidden.reshape(-1, width)
        # Long docs come in overlapping windows: pool each wordpiece once (see _windows).
        pooled = flat_hidden[doc_pieces(trf_data)]
        if self.pooling == "cls":
            doc_vector = hidden[0, 0]
        elif self.pooling == "max":
            doc_vector = pooled.max(axis=0) if len(pooled) else numpy.zeros((width,), "f")
        else:
            doc_vector = pooled.sum(axis=0) / max(len(pooled), 1)
        # Token vectors: pool each token's wordpieces (tokens with none get zeros).
        owner, flat = token_pieces(trf_data)
        pieces = flat_hidden[flat]
        lengths = numpy.bincount(owner, minlength=len(doc))
        if self.pooling == "max":
            token_vectors = numpy.full((len(doc), width), -numpy.inf, "f")
            numpy.maximum.at(token_vectors, owner, pieces)
            token_vectors[lengths == 0] = 0.0
        else:
            token_vectors = numpy.zeros((len(doc), width), "f")
            numpy.add.at(token_vectors, owner, pieces)
            token_vectors /= numpy.maximum(lengths, 1)[:, None]
        doc_vector = numpy.asarray(doc_vector, "f")
        if not lengths.any():  # whitespace only: nothing but special tokens, so no meaning to pool
            doc_vector = numpy.zeros_like(doc_vector)
        return doc_vector, token_vectors, lengths > 0

    def set_annotations(self, docs: Sequence[Doc], predictions: List[DocVectors]) -> None:
        for doc, (doc_vector, token_vectors, has_vector) in zip(docs, predictions):
            doc.tensor = token_vectors
            doc._.trf_vector = _l2(doc_vector) if self.normalize else doc_vector
            doc._.trf_token_has_vector = has_vector
            doc._.trf_vector_config = {"pooling": self.pooling, "normalize": self.normalize}
            restore_vector_hooks(doc)

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        with disk_writes(f"the '{self.name}' component", path, IN_PLACE_HINT):
            util.to_disk(path, {"cfg": lambda p: atomic_write_text(p, srsly.json_dumps(self.cfg, indent=2))}, exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "TrfSimilarity":
        util.from_disk(path, {"cfg": lambda p: self.cfg.update(srsly.read_json(p))}, exclude)
        return self

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return srsly.msgpack_dumps({"cfg": self.cfg})

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = tuple()) -> "TrfSimilarity":
        self.cfg.update(srsly.msgpack_loads(data)["cfg"])
        return self


def _l2(vector: numpy.ndarray) -> numpy.ndarray:
    norm = float(numpy.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def restore_vector_hooks(doc: Doc) -> Doc:
    """(Re)install the vector and similarity hooks from what trf_similarity stored in `doc._`.

    Doc.to_bytes / DocBin keep `doc.tensor` and the `doc._` values but drop `doc.user_hooks`
    (spaCy warning W109), so a deserialized doc's `.vector` would silently become the mean of
    doc.tensor. Call it on docs restored with Doc.from_bytes or DocBin, and on the docs of
    `nlp.pipe(..., n_process=N)` (which come back from the workers as bytes):
    `docs = map(restore_vector_hooks, nlp.pipe(texts, n_process=2))`. Docs trf_similarity
    never saw are left alone.
    """
    cfg = doc._.get("trf_vector_config") if doc.has_extension("trf_vector_config") else None
    if cfg is None or doc._.trf_vector is None or doc._.trf_token_has_vector is None:
        return doc
    norm = bool(cfg.get("normalize", True))
    doc.user_hooks["vector"] = _doc_vector
    doc.user_hooks["has_vector"] = _doc_has_vector
    doc.user_hooks["similarity"] = _similarity
    doc.user_span_hooks["vector"] = partial(_span_vector, pooling=cfg.get("pooling", "mean"), normalize=norm)
    doc.user_span_hooks["has_vector"] = _span_has_vector
    doc.user_span_hooks["similarity"] = _similarity
    doc.user_token_hooks["vector"] = partial(_token_vector, normalize=norm)
    doc.user_token_hooks["has_vector"] = _token_has_vector
    doc.user_token_hooks["similarity"] = _similarity
    return doc


# User hooks are module-level functions (picklable) reading what set_annotations stored.
def _doc_vector(doc: Doc) -> numpy.ndarray:
    return doc._.trf_vector


def _doc_has_vector(doc: Doc) -> bool:
    return doc._.trf_vector is not None and bool(numpy.any(doc._.trf_vector))


def _span_vector(span, pooling: str, normalize: bool) -> numpy.ndarray:
    doc = span.doc
    has = doc._.trf_token_has_vector[span.start : span.end]
    vectors = doc.tensor[span.start : span.end][has]
    if len(vectors) == 0:
        return numpy.zeros((doc.tensor.shape[1],), "f")
    vector = vectors.max(axis=0) if pooling == "max" else vectors.mean(axis=0)
    return _l2(vector) if normalize else vector


def _span_has_vector(span) -> bool:
    return bool(span.doc._.trf_token_has_vector[span.start : span.end].any())


def _token_vector(token, normalize: bool) -> numpy.ndarray:
    vector = token.doc.tensor[token.i]
    return _l2(vector) if normalize else vector


def _token_has_vector(token) -> bool:
    return bool(token.doc._.trf_token_has_vector[token.i])


def _similarity(obj, other) -> float:
    a, b = obj.vector, other.vector
    norm = float(numpy.linalg.norm(a) * numpy.linalg.norm(b))
    return float(numpy.dot(a, b) / norm) if norm > 0 else 0.0
