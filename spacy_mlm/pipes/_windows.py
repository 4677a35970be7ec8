"""Which wordpieces stand for a doc when spacy-transformers encodes it in overlapping windows.

A doc longer than one window is encoded as strided windows (`strided_spans.v1`): tokens in an
overlap are encoded twice and every window brings its own special tokens. Pooling over all
windows would count those wordpieces twice and every window's [CLS]/[SEP] again, so pipes
take each token's wordpieces from one window only, the one where the token is best centred
(most context on both sides), and the special tokens of the doc's start and end only.
"""

from typing import Optional, Tuple

import numpy


def _to_numpy(array) -> numpy.ndarray:
    return array.get() if hasattr(array, "get") else numpy.asarray(array)


def token_pieces(trf_data) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """(owner, flat): for every spaCy token, its wordpieces in its best-centred window.

    `flat` indexes the (windows * seq_len) flattened hidden states, `owner` is the token
    index of each entry (sorted: a token's entries are one run); tokens without wordpieces have no
    entry. Ties go to the earlier window.
    """
    seq_len = trf_data.wordpieces.input_ids.shape[1]
    window_lengths = _to_numpy(trf_data.wordpieces.attention_mask).sum(axis=1).astype("i")
    lengths = numpy.asarray(_to_numpy(trf_data.align.lengths), dtype="i")
    flat = numpy.asarray(_to_numpy(trf_data.align.dataXd), dtype="i").ravel()
    owner = numpy.repeat(numpy.arange(len(lengths), dtype="i"), lengths)
    if window_lengths.shape[0] <= 1 or flat.size == 0:
        return owner, flat
    window, pos = numpy.divmod(flat, seq_len)
    # A token's margin in a window is that of its least-centred wordpiece there.
    margin = numpy.minimum(pos, window_lengths[window] - 1 - pos)
    group = owner.astype("i8") * window_lengths.shape[0] + window
    group_ids, inverse = numpy.unique(group, return_inverse=True)
    group_margin = numpy.full(len(group_ids), numpy.iinfo("i").max, "i")
    numpy.minimum.at(group_margin, inverse, margin)
    group_owner = group_ids // window_lengths.shape[0]
    # Per token, the group with the largest margin; groups are sorted by window, so the
    # first maximum is the earliest window.
    order = numpy.lexsort((group_ids, -group_margin, group_owner))
    first = numpy.ones(len(order), bool)
    first[1:] = group_owner[order][1:] != group_owner[order][:-1]
    chosen = numpy.zeros(len(group_ids), bool)
    chosen[order[first]] = True
    keep = chosen[inverse]
    return owner[keep], flat[keep]


def doc_pieces(trf_data, token_flat: Optional[numpy.ndarray] = None) -> numpy.ndarray:
    """Sorted flat indices of the wordpieces a doc vector pools over.

    One window: every wordpiece the attention mask covers (sentence-transformers' mean
    pooling). Several: each token's wordpieces once (`token_pieces`), the special tokens
    before the first token of the first window and after the last token of the last window.
    `token_flat`: the `flat` of `token_pieces(trf_data)` where the caller has it already.
    """
    mask = _to_numpy(trf_data.wordpieces.attention_mask).astype(bool)
    n_windows, seq_len = mask.shape
    if n_windows <= 1:
        return numpy.flatnonzero(mask.ravel())
    flat = token_pieces(trf_data)[1] if token_flat is None else token_flat
    aligned = numpy.zeros(mask.size, bool)
    aligned[numpy.asarray(_to_numpy(trf_data.align.dataXd), dtype="i").ravel()] = True
    aligned = aligned.reshape(mask.shape)
    specials = []
    for window, edge in ((0, "start"), (n_windows - 1, "end")):
        hits = numpy.flatnonzero(aligned[window])
        positions = numpy.flatnonzero(mask[window] & ~aligned[window])
        if hits.size:
            positions = positions[positions < hits[0]] if edge == "start" else positions[positions > hits[-1]]
        specials.append(window * seq_len + positions)
    return numpy.unique(numpy.concatenate([flat, *specials]))
