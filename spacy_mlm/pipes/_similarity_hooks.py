"""The user hooks through which trf_similarity's vectors become `doc.vector`, `span.vector`,
`token.vector`, `has_vector` and `.similarity()`, from what the pipe stored in `doc._`."""

from functools import partial

import numpy
from spacy.tokens import Doc


def l2(vector: numpy.ndarray) -> numpy.ndarray:
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
    return l2(vector) if normalize else vector


def _span_has_vector(span) -> bool:
    return bool(span.doc._.trf_token_has_vector[span.start : span.end].any())


def _token_vector(token, normalize: bool) -> numpy.ndarray:
    vector = token.doc.tensor[token.i]
    return l2(vector) if normalize else vector


def _token_has_vector(token) -> bool:
    return bool(token.doc._.trf_token_has_vector[token.i])


def _similarity(obj, other) -> float:
    a, b = obj.vector, other.vector
    norm = float(numpy.linalg.norm(a) * numpy.linalg.norm(b))
    return float(numpy.dot(a, b) / norm) if norm > 0 else 0.0
