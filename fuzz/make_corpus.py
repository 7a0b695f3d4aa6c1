"""Seed the fuzz corpus from the protocol's golden test vectors (``data/vectors/``).

``python fuzz/make_corpus.py`` writes one file per vector frame into each target's corpus.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
VECTORS = HERE.parent / "data" / "vectors" / "protocol_v1.json"


def _frames():
    doc = json.loads(VECTORS.read_text())
    for vector in doc["vectors"]:
        yield bytes.fromhex(vector["wire_hex"])


def main() -> int:
    frames = list(_frames())
    seeds = {
        "decoder": [b"\x03" + f for f in frames] + [b"\x01" + b"".join(frames)],
        "host": [b"\x00" + f for f in frames] + [b"\x00" + b"".join(frames)],
        "device": [b"\x01" + f for f in frames],
    }
    for name, items in seeds.items():
        folder = HERE / "corpus" / name
        folder.mkdir(parents=True, exist_ok=True)
        for item in items:
            (folder / hashlib.sha1(item).hexdigest()).write_bytes(item)
    print({name: len(items) for name, items in seeds.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
