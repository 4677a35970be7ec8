"""Pseudo-log-likelihood scoring (Salazar et al. 2020): mask each wordpiece in turn and sum
the log-probabilities of the originals. Many masked copies share one forward pass, and the
MLM head runs only on the one masked position of each copy."""

import math
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch

from ..errors import SpacyMlmError

Scorer = Tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor], object]  # encoder, head, tokenizer


def load_scorer(model: Union[str, Path], device: Union[str, torch.device] = "cpu") -> Scorer:
    """(encoder, head, tokenizer) of the fill_mask pipe of a spaCy pipeline, or of one built
    around an HF MLM checkpoint."""
    from ..mlm import load_fill_mask_pipeline

    fill_mask = load_fill_mask_pipeline(str(model)).get_pipe("fill_mask")
    head = fill_mask.tied_head()
    trf = fill_mask.upstream_model
    trf.transformer.to(device)
    head.to(device)
    return trf.transformer, head, trf.tokenizer


@torch.no_grad()
def pseudo_perplexity(
    model: Union[str, Path, Scorer],
    texts: Iterable[str],
    *,
    batch_size: int = 128,
    max_length: Optional[int] = None,
    device: Union[str, torch.device] = "cpu",
) -> Dict[str, float]:
    """Score texts with an MLM. RETURNS a dict with pseudo_log_likelihood (natural log, summed),
    tokens (scored wordpieces), texts, and pseudo_perplexity = exp(-PLL / tokens)."""
    encoder, head, tokenizer = load_scorer(model, device) if isinstance(model, (str, Path)) else model
    encoder.eval()
    if isinstance(head, torch.nn.Module):
        head.eval()
    if max_length is None:
        limit = getattr(getattr(encoder, "config", None), "max_position_embeddings", 512)
        max_length = min(512, int(tokenizer.model_max_length), int(limit))
    special = set(tokenizer.all_special_ids)
    # One item per (text, position to mask).
    items: List[Tuple[List[int], int]] = []
    n_texts = 0
    for text in texts:
        ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
        n_texts += 1
        items.extend((ids, i) for i, t in enumerate(ids) if t not in special)
    if not items:
        raise SpacyMlmError("Nothing to score: the corpus has no text (or only special tokens).")
    total = 0.0
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        length = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), length), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), length), dtype=torch.long)
        for row, (ids, _) in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
        positions = torch.tensor([pos for _, pos in chunk])
        rows = torch.arange(len(chunk))
        targets = input_ids[rows, positions].clone()
        input_ids[rows, positions] = tokenizer.mask_token_id
        hidden = encoder(input_ids=input_ids.to(device), attention_mask=attention.to(device)).last_hidden_state
        logits = head(hidden[rows.to(device), positions.to(device)]).float()
        total += float(torch.log_softmax(logits, -1).gather(1, targets.to(device)[:, None]).sum())
    return {
        "pseudo_log_likelihood": total,
        "tokens": len(items),
        "texts": n_texts,
        "pseudo_perplexity": math.exp(-total / len(items)),
    }
