"""fill_mask's one serialization format: a set of named parts, written as files by to_disk
(`cfg`, `head/head.safetensors`, `head/config.json`, `head/head.json`) or packed into one
msgpack message by to_bytes."""

import json
from pathlib import Path
from typing import Any, Dict, Tuple

import srsly

from ..errors import SpacyMlmError
from ..mlm import MaskedLMHead

PARTS = ("cfg", "head/head.safetensors", "head/config.json", "head/head.json")


def to_parts(cfg: Dict[str, Any], head: MaskedLMHead) -> Dict[str, bytes]:
    return {
        "cfg": srsly.json_dumps(cfg, indent=2).encode("utf8"),
        "head/head.safetensors": head.head_bytes(),
        "head/config.json": head.config.to_json_string().encode("utf8"),
        "head/head.json": json.dumps({"tied": head.tied}).encode("utf8"),
    }


def from_parts(parts: Dict[str, bytes], where: str) -> Tuple[Dict[str, Any], MaskedLMHead]:
    """(cfg, head) from the parts; `where` names them in errors."""
    meta = json.loads(parts["head/head.json"])
    head = MaskedLMHead.from_config(parts["head/config.json"].decode("utf8"), bool(meta["tied"]))
    head.load_head_bytes(parts["head/head.safetensors"], source=f"{where}/head/head.safetensors")
    return json.loads(parts["cfg"]), head


def read_parts(path: Path) -> Dict[str, bytes]:
    for name in PARTS:
        if not (path / name).is_file():
            raise SpacyMlmError(
                f"{path / name} is missing: the fill_mask directory is incomplete. "
                "Save the pipeline again with nlp.to_disk()."
            )
    return {name: (path / name).read_bytes() for name in PARTS}


def unpack_parts(data: bytes) -> Dict[str, bytes]:
    """The parts packed by to_bytes; also reads the first to_bytes format (one msgpack message
    with cfg, config, tied and head), so pipelines saved with it still load."""
    msg = srsly.msgpack_loads(data)
    if "head" not in msg:
        return msg
    return {
        "cfg": srsly.json_dumps(msg["cfg"]).encode("utf8"),
        "head/head.safetensors": msg["head"],
        "head/config.json": msg["config"].encode("utf8"),
        "head/head.json": json.dumps({"tied": msg["tied"]}).encode("utf8"),
    }
