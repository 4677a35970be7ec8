"""STS-B Spearman of a pipeline's similarity (trf_similarity: mean-pooled transformer output).

    python scripts/eval_sts.py MODEL STS_FILE OUTPUT_JSON [--limit N]

STS_FILE: an STS Benchmark file (sts-dev.csv: tab-separated, score in column 5, the two
sentences in columns 6 and 7, no quoting), read by spacy_mlm.convert.read_sts_rows.
"""

import argparse
import json
from pathlib import Path

import spacy

from spacy_mlm.convert import read_sts_rows
from spacy_mlm.pipes.similarity import spearman


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("sts_file", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    rows = list(read_sts_rows(args.sts_file))[: args.limit]
    nlp = spacy.load(args.model, exclude=["fill_mask", "ner", "textcat"])
    first = list(nlp.pipe(r["sentence1"] for r in rows))
    second = list(nlp.pipe(r["sentence2"] for r in rows))
    predicted = [a.similarity(b) for a, b in zip(first, second)]
    # The package's Spearman (scipy's definition): scipy is not a dependency of the package.
    result = {"STS-B dev Spearman": spearman(predicted, [r["score"] for r in rows]), "pairs": len(rows)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2), encoding="utf8")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
