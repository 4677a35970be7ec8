"""What fill_mask reads from the upstream transformer: the vocabulary ids of its `targets`,
and the hidden state of each mask token."""

import warnings
from typing import List, Optional

import numpy
from spacy.attrs import ORTH

from ..errors import SpacyMlmError
from ._windows import _to_numpy, token_pieces

OOV_TARGETS = ("warn", "error")  # what fill_mask does with targets that are not vocabulary entries


class OovTargetWarning(UserWarning):
    """A fill_mask target is not a vocabulary entry: its first wordpiece stands in for it."""


def target_ids(tokenizer, targets: List[str], pipe_name: str, oov_targets: str = "warn") -> List[int]:
    """Candidate ids for `targets`, resolved as HF's fill-mask pipeline resolves them: a target that
    is not a vocabulary entry stands for its first wordpiece (and is dropped if it has none), with an
    OovTargetWarning naming both; oov_targets = "error" refuses such targets instead."""
    vocab = tokenizer.get_vocab()
    ids, replaced = [], []
    for target in targets:
        id_ = vocab.get(target)
        if id_ is None:
            pieces = tokenizer(target, add_special_tokens=False, max_length=1, truncation=True)["input_ids"]
            replaced.append(f"{target!r} -> " + (repr(tokenizer.convert_ids_to_tokens(pieces[0])) if pieces
                                                 else "nothing (dropped)"))
            if not pieces:
                continue
            id_ = pieces[0]
        ids.append(int(id_))
    if replaced:
        what = (f"[components.{pipe_name}] targets that are not vocabulary entries of the tokenizer, with the "
                f"first wordpiece that stands in for each: {', '.join(replaced)}")
        if oov_targets == "error":
            raise SpacyMlmError(f"{what}. Use targets that are single vocabulary entries, or set "
                                f"[components.{pipe_name}] oov_targets = \"warn\" to predict their first wordpieces.")
        warnings.warn(f"{what}. Predictions for them are predictions of those wordpieces; set oov_targets = "
                      "\"error\" to refuse such targets.", OovTargetWarning, stacklevel=2)
    ids = list(set(ids))  # same order as HF, so ties break the same way
    if not ids:
        raise SpacyMlmError(
            f"None of the fill_mask targets {targets} maps to a vocabulary entry: set "
            f"[components.{pipe_name}] targets to words the tokenizer knows, or to null for the whole vocabulary."
        )
    return ids


def mask_starts(doc, mask: Optional[str], split_masks: bool) -> List[int]:
    """Index of the first token of every mask in the doc. With spaCy's rule-based tokenizer a mask
    is one token (fill_mask adds it as a special case; a glued '[MASK]x' is no mask). Tokenizers
    without special cases (spaCy's Chinese, Japanese, Korean, Thai, ...) split '<mask>' into '<',
    'mask', '>': with `split_masks`, a run of tokens covering exactly the mask string is one mask."""
    if not mask:
        return []
    # ORTH ids rather than token.text: no Token object per token (nlp.pipe calls this for every doc).
    starts = numpy.flatnonzero(doc.to_array(ORTH) == doc.vocab.strings[mask]).tolist()
    if not split_masks or starts or mask not in doc.text:
        return starts
    text, found = doc.text, []
    at = text.find(mask)
    while at != -1:
        span = doc.char_span(at, at + len(mask))
        if span is not None:
            found.append(span.start)
        at = text.find(mask, at + len(mask))
    return found


def mask_hidden_states(trf_data, token_starts: List[int], mask_id: Optional[int]) -> list:
    """Per mask token, the hidden state of its mask wordpiece in the window where the token is
    best centred (the rule doc vectors use, _windows.token_pieces), or None when the mask fell
    outside every window."""
    hidden = trf_data.model_output.get("last_hidden_state")
    if hidden is None or hidden.size == 0:
        return [None] * len(token_starts)
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_ids = _to_numpy(trf_data.wordpieces.input_ids).reshape(-1)
    owner, flat = token_pieces(trf_data)
    rows = []
    for token_i in token_starts:
        pieces = flat[owner == token_i]
        pieces = pieces[flat_ids[pieces] == mask_id]
        rows.append(flat_hidden[int(pieces[0])] if pieces.size else None)
    return rows
