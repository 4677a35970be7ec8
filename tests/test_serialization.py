"""Round trips: to_disk / spacy.load in a fresh process with no network, disk size."""

import json
import subprocess
import sys

import numpy
import pytest
from safetensors import safe_open

from .conftest import make_nlp

TEXTS = ["the capital of [MASK] is paris", "[MASK] [MASK] city", "", "a quiet street in rome"]

LOAD_SCRIPT = """
import json, sys, spacy
nlp = spacy.load(sys.argv[1])
out = []
for doc in nlp.pipe(json.loads(sys.argv[2])):
    out.append({"fill_mask": doc._.fill_mask, "vector": doc.vector.tolist()})
print(json.dumps(out))
"""


def outputs(nlp, texts):
    return [{"fill_mask": d._.fill_mask, "vector": d.vector.tolist()} for d in nlp.pipe(texts)]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert [[p["token"] for p in e] for e in x["fill_mask"]] == [[p["token"] for p in e] for e in y["fill_mask"]]
        assert [[p["sequence"] for p in e] for e in x["fill_mask"]] == [[p["sequence"] for p in e] for e in y["fill_mask"]]
        for ex, ey in zip(x["fill_mask"], y["fill_mask"]):
            numpy.testing.assert_allclose([p["score"] for p in ex], [p["score"] for p in ey], atol=1e-6)
        numpy.testing.assert_allclose(x["vector"], y["vector"], atol=1e-6)


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_to_disk_load_in_fresh_process(arch, checkpoints, tmp_path):
    nlp = make_nlp(checkpoints[arch], "fill_mask", "trf_similarity")
    texts = [t.replace("[MASK]", nlp.get_pipe("fill_mask").mask_token) for t in TEXTS]
    before = outputs(nlp, texts)
    nlp.to_disk(tmp_path / "pipeline")
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(tmp_path / "pipeline"), json.dumps(texts)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    after = json.loads(proc.stdout.strip().splitlines()[-1])
    assert_same(before, after)


def test_reload_in_process_and_head_not_duplicated(bert_checkpoint, tmp_path):
    import spacy

    nlp = make_nlp(bert_checkpoint, "fill_mask", "trf_similarity")
    nlp.to_disk(tmp_path / "p")
    head_file = tmp_path / "p" / "fill_mask" / "head" / "head.safetensors"
    with safe_open(str(head_file), "pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    vocab, width = nlp.get_pipe("fill_mask").head.config.vocab_size, 128
    assert (vocab, width) not in shapes.values(), "decoder matrix stored twice"
    # BERT's head: transform dense (w*w + w), LayerNorm (2w) and the output bias (vocab).
    stored = sum(numpy.prod(s) for s in shapes.values())
    assert stored == width * width + 3 * width + vocab
    reloaded = spacy.load(tmp_path / "p")
    assert_same(outputs(nlp, TEXTS), outputs(reloaded, TEXTS))
    # The decoder really is the transformer's embedding matrix, not a copy.
    fm = reloaded.get_pipe("fill_mask")
    fm.tied_head()
    emb = reloaded.get_pipe("transformer").model.transformer.get_input_embeddings().weight
    assert fm.head.decoder_weight.data_ptr() == emb.data_ptr()


def test_factories_available_without_import(bert_checkpoint):
    """The entry points register the factories: no `import spacy_mlm` needed."""
    script = (
        "import spacy, sys\n"
        "nlp = spacy.blank('en')\n"
        f"nlp.add_pipe('transformer', config={{'model': {{'name': {str(bert_checkpoint)!r}}}}})\n"
        "nlp.add_pipe('fill_mask'); nlp.add_pipe('trf_similarity'); nlp.initialize()\n"
        "assert 'spacy_mlm' in sys.modules\n"
        "doc = nlp('a [MASK] city'); print(len(doc._.fill_mask[0]), doc.has_vector)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["5", "True"]
