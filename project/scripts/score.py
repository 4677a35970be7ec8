"""Pseudo-perplexity of a pipeline (its fill_mask head) or MLM checkpoint on a text file, as JSON.

    python scripts/score.py MODEL TEXT_FILE OUTPUT_JSON [--max-docs N]
"""

import argparse
import json
from pathlib import Path

from spacy_mlm.pretrain.score import pseudo_perplexity
from spacy_mlm.pretrain.tokenizer import iter_corpus_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("text_file")
    parser.add_argument("output", type=Path)
    parser.add_argument("--max-docs", type=int, default=None)
    args = parser.parse_args()
    texts = list(iter_corpus_lines([args.text_file]))[: args.max_docs]
    result = pseudo_perplexity(args.model, texts)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2), encoding="utf8")
    print(f"pseudo_perplexity: {result['pseudo_perplexity']:.3f}")


if __name__ == "__main__":
    main()
