"""STS-B Spearman of a pipeline's similarity (trf_similarity: mean-pooled transformer output).

    python scripts/eval_sts.py MODEL STS_FILE OUTPUT_JSON [--limit N]

STS_FILE: an STS Benchmark file (sts-dev.csv: tab-separated, score in column 5, the two
sentences in columns 6 and 7, no quoting).
"""

import argparse
import csv
import json
from pathlib import Path

import spacy
from scipy.stats import spearmanr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("sts_file", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    with args.sts_file.open(encoding="utf8") as f:
        rows = [(float(c[4]), c[5], c[6]) for c in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    rows = rows[: args.limit]
    nlp = spacy.load(args.model, exclude=["fill_mask", "ner", "textcat"])
    first = list(nlp.pipe(r[1] for r in rows))
    second = list(nlp.pipe(r[2] for r in rows))
    predicted = [a.similarity(b) for a, b in zip(first, second)]
    result = {"STS-B dev Spearman": float(spearmanr(predicted, [r[0] for r in rows]).correlation), "pairs": len(rows)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2), encoding="utf8")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
