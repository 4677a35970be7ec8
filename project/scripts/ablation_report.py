"""Print (and write as Markdown) the encoder ablation table of the `ablation` workflow.

    python scripts/ablation_report.py RESULTS_JSONL... --out metrics/ablation/table.md

Each RESULTS_JSONL holds the JSON lines bench/eval_tasks.py appends (one line per seed). Rows
are the runs' tags in the order given; each cell is mean ± std over the seeds (n = seeds).
"""

import argparse
import json
import statistics
from pathlib import Path
from typing import Dict, List

from wasabi import msg


def cell(scores: List[float]) -> str:
    if not scores:
        return "-"
    if len(scores) == 1:
        return f"{scores[0]:.3f} (n=1)"
    return f"{statistics.mean(scores):.3f} ± {statistics.stdev(scores):.3f} (n={len(scores)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs: Dict[str, Dict[int, dict]] = {}
    for path in args.results:
        if path.is_file():
            for line in path.read_text(encoding="utf8").splitlines():
                if line.strip():
                    run = json.loads(line)
                    runs.setdefault(run["tag"], {})[run["args"]["seed"]] = run  # a rerun of a seed replaces it
    header = ("encoder", "WNUT-17 dev F1", "SST-2 dev accuracy", "seeds", "epochs / lr / batch")
    rows = []
    for tag, by_seed in runs.items():
        seeds = sorted(by_seed)
        a = by_seed[seeds[0]]["args"]
        rows.append((
            tag,
            cell([by_seed[s]["ner/spacy"]["ents_f"] for s in seeds if "ner/spacy" in by_seed[s]]),
            cell([by_seed[s]["textcat/spacy"]["accuracy"] for s in seeds if "textcat/spacy" in by_seed[s]]),
            ",".join(map(str, seeds)),
            f"{a['epochs']} / {a['lr']:g} / {a['batch_size']}",
        ))
    msg.table(rows, header=header, divider=True, title="Same fine-tuning budget, different encoders")
    if args.out:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n", encoding="utf8")


if __name__ == "__main__":
    main()
