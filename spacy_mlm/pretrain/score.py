"""Pseudo-log-likelihood scoring (Salazar et al. 2020): mask each wordpiece in turn and sum
the log-probabilities of the originals. Many masked copies share one forward pass, and the
MLM head runs only on the one masked position of each copy.

A text longer than the model's maximum length is scored window by window, not cut off: windows
of the maximum length (special tokens included) overlap by half, and each wordpiece is scored
once, in the window where it is best centred (ties: the earlier window), the rule the pipes use
for long docs (spacy_mlm/pipes/_windows.py)."""

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
    source: str = "the corpus",
) -> Dict[str, float]:
    """Score texts with an MLM. RETURNS a dict with pseudo_log_likelihood (natural log, summed),
    tokens (scored wordpieces), texts, windowed_texts (texts longer than max_length, scored window
    by window), max_length and pseudo_perplexity = exp(-PLL / tokens). source: where the texts
    come from, for the message when there is nothing to score."""
    encoder, head, tokenizer = load_scorer(model, device) if isinstance(model, (str, Path)) else model
    encoder.eval()
    if isinstance(head, torch.nn.Module):
        head.eval()
    if max_length is None:
        limit = getattr(getattr(encoder, "config", None), "max_position_embeddings", 512)
        max_length = min(512, int(tokenizer.model_max_length), int(limit))
    special = set(tokenizer.all_special_ids)
    # One item per (window, position to mask).
    items: List[Tuple[List[int], int]] = []
    n_texts = n_windowed = 0
    for text in texts:
        encoded = tokenizer(text, return_special_tokens_mask=True, verbose=False)
        windows = text_windows(encoded["input_ids"], encoded["special_tokens_mask"], max_length)
        n_texts += 1
        n_windowed += len(windows) > 1
        items.extend((ids, i) for ids, positions in windows for i in positions if ids[i] not in special)
    if not items:
        raise SpacyMlmError(f"Nothing to score: {source} has no text (or only special tokens). Check the paths, "
                            "and that the files hold text.")
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
        "windowed_texts": n_windowed,
        "max_length": max_length,
        "pseudo_perplexity": math.exp(-total / len(items)),
    }


def text_windows(ids: List[int], special_mask: List[int], max_length: int) -> List[Tuple[List[int], List[int]]]:
    """(window ids, positions to score in it) covering a tokenized text: the text itself when it
    fits in max_length, else windows of max_length wordpieces with the text's leading and trailing
    special tokens, overlapping by half, each wordpiece scored in its best-centred window."""
    if len(ids) <= max_length:
        return [(ids, list(range(len(ids))))]
    lead = next(i for i, flag in enumerate(special_mask) if not flag)
    trail = next(i for i, flag in enumerate(reversed(special_mask)) if not flag)
    prefix, body, suffix = ids[:lead], ids[lead : len(ids) - trail], ids[len(ids) - trail :]
    size = max_length - lead - trail
    if size < 2:
        raise SpacyMlmError(f"max_length = {max_length} leaves no room for text beside {lead + trail} special tokens.")
    stride = size // 2
    starts = list(range(0, len(body) - size, stride)) + [len(body) - size]
    owned: List[List[int]] = [[] for _ in starts]
    for pos in range(len(body)):
        first = max(0, (pos - size) // stride)  # no window before this one contains pos
        candidates = [k for k in range(first, min(len(starts), pos // stride + 2)) if starts[k] <= pos < starts[k] + size]
        best = max(candidates, key=lambda k: (min(pos - starts[k], starts[k] + size - 1 - pos), -k))
        owned[best].append(lead + pos - starts[best])
    return [(prefix + body[s : s + size] + suffix, positions) for s, positions in zip(starts, owned)]


def gpu_device(gpu_id: int) -> str:
    """The torch device of --gpu-id (-1: CPU), checked."""
    if gpu_id < 0:
        return "cpu"
    if not torch.cuda.is_available():
        raise SpacyMlmError(f"--gpu-id {gpu_id} but CUDA is not available: use --gpu-id -1 for CPU.")
    if gpu_id >= torch.cuda.device_count():
        raise SpacyMlmError(f"--gpu-id {gpu_id}, but there are {torch.cuda.device_count()} GPUs: use 0 to "
                            f"{torch.cuda.device_count() - 1}, or -1 for CPU.")
    return f"cuda:{gpu_id}"
