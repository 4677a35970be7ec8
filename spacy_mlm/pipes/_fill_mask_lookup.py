"""What fill_mask reads from the upstream transformer: the vocabulary ids of its `targets`,
and the hidden state of each mask token."""

from typing import List, Optional

from ..errors import SpacyMlmError


def target_ids(tokenizer, targets: List[str], pipe_name: str) -> List[int]:
    """Candidate ids for `targets`, resolved as HF's fill-mask pipeline resolves them."""
    vocab = tokenizer.get_vocab()
    ids = []
    for target in targets:
        id_ = vocab.get(target)
        if id_ is None:
            pieces = tokenizer(target, add_special_tokens=False, max_length=1, truncation=True)["input_ids"]
            if not pieces:
                continue
            id_ = pieces[0]
        ids.append(int(id_))
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
    starts = [token.i for token in doc if token.text == mask]
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


def mask_hidden_state(trf_data, token_i: int, mask_id: Optional[int]):
    """Hidden state of the mask wordpiece in the window where the mask is best centred, or None
    when the mask fell outside every window."""
    hidden = trf_data.model_output.get("last_hidden_state")
    if hidden is None or hidden.size == 0 or token_i >= len(trf_data.align):
        return None
    n_spans, seq_len, width = hidden.shape
    flat_ids = trf_data.wordpieces.input_ids.reshape(-1)
    lengths = trf_data.wordpieces.attention_mask.sum(axis=1)
    best, best_margin = None, -1
    for flat in trf_data.align[token_i].dataXd.ravel().tolist():
        if int(flat_ids[flat]) != mask_id:
            continue
        span, pos = divmod(flat, seq_len)
        margin = min(pos, int(lengths[span]) - 1 - pos)
        if margin > best_margin:
            best, best_margin = flat, margin
    if best is None:
        return None
    return hidden.reshape(-1, width)[best]
