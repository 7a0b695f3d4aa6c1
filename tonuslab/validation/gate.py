"""The refactor gate: analysis output frozen before the issue-14 refactor, compared after it.

``python -m tonuslab.validation.gate --write`` stores in ``data/refactor_gate/``:

- ``samples.json``: for each sample session in ``data/sessions/``, the summary
  :func:`tonuslab.analysis.analyze_file` returns (what ``tonuslab analyze --json`` prints, with
  ``write=False``) and the profile built from it (:func:`tonuslab.profile.build_profile`).
- ``stretch_seeds.json`` / ``hreflex_seeds.json``: sessions simulated exactly as
  ``tonuslab validate stretch --quick`` / ``tonuslab validate hreflex --quick`` simulate them
  (:mod:`tonuslab.validation.stretch_reflex`, :mod:`tonuslab.validation.hreflex`), a few seeds
  per profile, and the ``to_dict()`` of each analysis result (every stretch detector with the
  EMG-onset convention; the H-reflex analysis with the suite's bootstrap settings).

Serialisation is deterministic (:func:`dumps`): JSON with sorted keys, floats by ``repr`` (every
bit), NaN and infinities as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``. Fields that
legitimately vary between runs are stripped (:data:`STRIPPED_KEYS`): ``file`` (the path given),
``software_version`` (the version string). ``python -m tonuslab.validation.gate --check`` (or
``tests/tonuslab/test_refactor_gate.py``) recomputes and compares the JSON text exactly.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
GATE_DIR = ROOT / "data" / "refactor_gate"
SESSIONS_DIR = ROOT / "data" / "sessions"

#: Keys removed (at any depth) because they vary between runs, not with the analysis.
STRIPPED_KEYS = frozenset({"file", "software_version"})

#: Seeds per profile of the validation suites (quick programs).
STRETCH_SEEDS = (0, 1)
HREFLEX_SEEDS = (0, 1)


def _canon(obj):
    if isinstance(obj, dict):
        return {str(k): _canon(v) for k, v in obj.items() if k not in STRIPPED_KEYS}
    if isinstance(obj, list | tuple):
        return [_canon(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_canon(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return _canon(obj.item())
    if isinstance(obj, pathlib.Path):
        return str(obj)
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return {"__float__": repr(obj)}
    raise TypeError(f"gate: cannot serialise {type(obj).__name__}")


def dumps(obj) -> str:
    """Deterministic JSON text of ``obj`` (sorted keys, floats by repr, NaN/inf as strings)."""
    import json

    text = json.dumps(_canon(obj), sort_keys=True, indent=1, ensure_ascii=True)
    # floats were wrapped so json never reformats them; unwrap to the repr text
    import re

    return re.sub(r'\{\s*"__float__": "([^"]+)"\s*\}', r"\1", text) + "\n"


def sample_outputs() -> dict:
    """Analysis summary and profile of every sample session."""
    from tonuslab.analysis import analyze_file
    from tonuslab.profile import build_profile

    out = {}
    for path in sorted(SESSIONS_DIR.glob("*.h5")):
        summary = analyze_file(path, write=False)
        out[path.name] = {"summary": summary, "profile": build_profile(summary).to_dict()}
    return out


def stretch_outputs(seeds=STRETCH_SEEDS) -> dict:
    """``to_dict()`` of the stretch-reflex analysis of validation sessions, every detector."""
    from dsp.stretch_reflex import analyze_stretch_reflex, available_detectors
    from tonuslab.validation import stretch_reflex as v

    out = {}
    for name in v.PROFILES:
        for seed in seeds:
            emg, fe, angle, fa, _truth, _note = v.simulate(name, seed, True)
            for det in available_detectors():
                res = analyze_stretch_reflex(
                    emg, fe, angle, fa, detector=det, reflex_delay_s=0.0, seed=seed,
                    detector_sensitivity=(det == "threshold"),
                )  # fmt: skip
                out[f"{name}/seed{seed}/{det}"] = res.to_dict()
    return out


def hreflex_outputs(seeds=HREFLEX_SEEDS) -> dict:
    """``to_dict()`` of the H-reflex analysis of validation sessions (quick, 50 bootstraps)."""
    from tonuslab.validation import hreflex as v

    out = {}
    for name in v.PROFILES:
        for seed in seeds:
            rate = v.RATES_HZ[seed % len(v.RATES_HZ)]
            rec = v.simulate(name, seed, rate, True)
            out[f"{name}/seed{seed}"] = v.analyse(rec, n_boot=50, seed=seed).to_dict()
    return out


#: Gate file name -> function computing its content.
PARTS = {
    "samples.json": sample_outputs,
    "stretch_seeds.json": stretch_outputs,
    "hreflex_seeds.json": hreflex_outputs,
}


def compute(name: str) -> str:
    """The JSON text of gate file ``name`` computed by the current tree."""
    return dumps(PARTS[name]())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tonuslab.validation.gate", description=__doc__)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", action="store_true", help="store the outputs in data/refactor_gate")
    g.add_argument("--check", action="store_true", help="compare with the stored outputs")
    ap.add_argument("parts", nargs="*", help=f"gate files (default all: {', '.join(PARTS)})")
    args = ap.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown gate file(s): {', '.join(unknown)}")
    bad = 0
    for name in args.parts or list(PARTS):
        text = compute(name)
        target = GATE_DIR / name
        if args.write:
            GATE_DIR.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)} ({len(text)} bytes)")
        else:
            same = target.exists() and target.read_text() == text
            bad += not same
            print(f"{name}: {'identical' if same else 'DIFFERS'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
