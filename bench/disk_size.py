"""Disk size of a saved transformer + fill_mask + trf_similarity pipeline vs its HF checkpoint.

    python bench/disk_size.py [--checkpoint DIR]

Default checkpoint: all-MiniLM-L6-v2's encoder with a fresh MLM head (as in bench_pipes.py).
"""

import argparse
import json
import tempfile
from pathlib import Path

import spacy
from bench_pipes import make_checkpoint


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    ckpt = Path(args.checkpoint or make_checkpoint(tmp))
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {"name": str(ckpt)}})
    nlp.add_pipe("fill_mask")
    nlp.add_pipe("trf_similarity")
    nlp.initialize()
    nlp.to_disk(tmp / "pipeline")
    sizes = {
        "hf_checkpoint_bytes": du(ckpt),
        "pipeline_bytes": du(tmp / "pipeline"),
        "transformer_bytes": du(tmp / "pipeline" / "transformer"),
        "fill_mask_bytes": du(tmp / "pipeline" / "fill_mask"),
    }
    sizes["ratio"] = round(sizes["pipeline_bytes"] / sizes["hf_checkpoint_bytes"], 3)
    print(json.dumps(sizes, indent=2))


if __name__ == "__main__":
    main()
