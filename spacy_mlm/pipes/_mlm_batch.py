"""fill_mask's training batch: the transformer's windows of the docs, tokenized and masked by the
masking functions pretraining uses (`spacy_mlm.TokenMasking.v1`, `WholeWordMasking.v1`, `SpanMasking.v1`)."""

import math
from collections import Counter
from typing import Dict, List, Sequence

import torch
from spacy.tokens import Span

from ..mlm_data.masking import Masker
from ..mlm_data.packing import WHITESPACE_WORD, collate, piece_word_ids


def _word_starts(span: Span, boundaries: str) -> List[int]:
    """Character offsets in span.text where words start: spaCy tokens, or whitespace-separated words."""
    if boundaries == "spacy":
        return [t.idx - span.start_char for t in span if not t.is_space]
    return [m.start() for m in WHITESPACE_WORD.finditer(span.text)]


def masked_batch(spans: List[Span], tokenizer, masker: Masker, generator: torch.Generator) -> Dict[str, torch.Tensor]:
    """input_ids (masked), attention_mask and labels (-100 where nothing is predicted) for the
    spans, as pretraining builds them: the same masker, special tokens never masked."""
    enc = tokenizer([span.text for span in spans], truncation=True, return_attention_mask=False,
                    return_offsets_mapping=masker.word_boundaries is not None, verbose=False)
    seqs, word_offset = [], 0
    for row, (span, ids) in enumerate(zip(spans, enc["input_ids"])):
        if masker.word_boundaries is None:
            seqs.append((ids, None))
            continue
        starts = _word_starts(span, masker.word_boundaries)
        # Ids unique in the batch: a word is masked with all its pieces and no other row's word.
        words = [word_offset + w for w in piece_word_ids(span.text, starts, enc["offset_mapping"][row])]
        word_offset += len(starts) + 1
        seqs.append((ids, words))
    batch = collate(seqs, tokenizer.pad_token_id, sorted(set(tokenizer.all_special_ids)))
    words = batch["word_ids"] if masker.word_boundaries else None
    inputs, labels = masker(batch["input_ids"], batch["special"], words, mask_token_id=tokenizer.mask_token_id,
                            vocab_size=len(tokenizer), generator=generator)
    return {"input_ids": inputs, "attention_mask": batch["attention_mask"], "labels": labels}


# What one more encoder call costs on CPU, in padded wordpieces: the per-call overhead of the
# encoder's many small ops. An estimate, not tuned; it only has to keep alike lengths in one call.
CALL_COST_PIECES = 128


def length_groups(lengths: Sequence[int], call_cost: float = CALL_COST_PIECES) -> List[List[int]]:
    """Row indices in groups of similar length (shortest group first), each to run through the
    encoder padded to its own longest row: the split of the length-sorted rows with the fewest
    padded wordpieces plus `call_cost` per group. One group when lengths are alike; short task
    windows and long replay windows padded to one length would waste most of the pass on padding."""
    counts = Counter(lengths)
    distinct = sorted(counts)
    # rows_upto[i]: rows no longer than distinct[i - 1]; groups are cut between distinct lengths.
    rows_upto = [0]
    for length in distinct:
        rows_upto.append(rows_upto[-1] + counts[length])
    best, cut = [0.0] + [math.inf] * len(distinct), [0] * (len(distinct) + 1)
    for end in range(1, len(distinct) + 1):  # best[end]: the cheapest split of the `end` shortest lengths
        for start in range(end):
            cost = best[start] + call_cost + (rows_upto[end] - rows_upto[start]) * distinct[end - 1]
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(distinct)
    while end:  # rows keep the batch's order within a group: one group is the batch as it was
        low, high = distinct[cut[end]], distinct[end - 1]
        groups.append([row for row, n in enumerate(lengths) if low <= n <= high])
        end = cut[end]
    return groups[::-1]
