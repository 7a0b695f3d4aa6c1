"""Regenerate the sample captures and sessions of ``data/`` from the emulated device.

Usage (from the repository root)::

    python data/captures/make_captures.py            # writes data/captures and data/sessions

Each recording runs the real recorder (``acquire.recorder.Recorder``) against the emulated device
with the virtual patient (``sim://PROFILE?seed=N&speed=realtime``), saves the wire capture and
the live session file, then replays the capture and writes ``data/captures/expected.json``:
SHA-256 of the sample arrays and event counts that ``tests/acquire/test_replay_data.py`` checks.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from acquire.protocols.stretch import StretchProtocol, StretchProtocolConfig  # noqa: E402
from acquire.recorder import Recorder, replay_capture  # noqa: E402
from acquire.session_file import open_session  # noqa: E402

SESSIONS = ROOT / "data" / "sessions"


def array_digest(arr) -> str:
    import numpy as np

    a = np.ascontiguousarray(arr, dtype="<i4")
    return hashlib.sha256(a.tobytes()).hexdigest()


def describe(path: pathlib.Path) -> dict:
    with open_session(path) as s:
        kinds: dict[str, int] = {}
        for e in s.events:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        return {
            "emg_shape": list(s.emg_counts.shape),
            "emg_sha256": array_digest(s.emg_counts),
            "angle_shape": list(s.angle.counts.shape) if s.angle is not None else None,
            "angle_sha256": array_digest(s.angle.counts[()]) if s.angle is not None else None,
            "gap_samples": sum(g["n_samples"] for g in s.gaps),
            "events": kinds,
        }


def record_stretch(name: str) -> None:
    url = "sim://mild_elbow?seed=1&speed=realtime"
    rec = Recorder(
        url,
        SESSIONS / f"{name}.h5",
        metadata={
            "subject_id": "VP-mild-elbow-1",
            "muscle": "biceps_brachii",
            "side": "left",
            "joint": "elbow",
            "stretch_direction_sign": 1,
            "protocol": "stretch",
            "operator": "emu",
            "notes": "virtual patient mild_elbow, seed 1",
        },
        config={"emg_rate_hz": 2000, "n_emg": 2, "angle_rate_hz": 500, "n_angle": 1},
        overwrite=True,
    )
    rec.open()
    cfg = StretchProtocolConfig(
        n_range=1, range_velocity_deg_s=40.0, velocities_deg_s=(80.0, 160.0, 240.0),
        repeats=1, rest_s=1.0,
    )  # fmt: skip
    protocol = StretchProtocol(rec, cfg, on_message=print)
    protocol.attach()
    done_at = None
    while rec.step(0.05):
        protocol.tick()
        if protocol.done:
            done_at = done_at or time.monotonic()
            if time.monotonic() - done_at > 0.5:
                break
    rec.close()


def record_hreflex(name: str, key_file: pathlib.Path) -> None:
    """A small recruitment ladder sent straight through the device client (single 1 ms pulses)."""
    url = f"sim://soleus_spastic?seed=2&speed=realtime&key_file={key_file}"
    from firmware_iface.auth import load_key_file

    rec = Recorder(
        url,
        SESSIONS / f"{name}.h5",
        metadata={
            "subject_id": "VP-soleus-spastic-2",
            "muscle": "soleus",
            "side": "right",
            "joint": "ankle",
            "protocol": "hreflex",
            "operator": "emu",
            "notes": "virtual patient soleus_spastic, seed 2; 1 s ladder (emulator only)",
        },
        config={"emg_rate_hz": 5000, "n_emg": 1, "angle_rate_hz": 100, "n_angle": 1},
        stim_key=load_key_file(key_file),
        overwrite=True,
    )
    rec.open()
    ladder_ma = [4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0, 32.0, 12.0, 12.0]
    interval = 5000  # samples (1 s of device time)
    next_index = 2500
    k = 0
    while rec.step(0.02):
        if k < len(ladder_ma) and rec.latest_emg_index() >= next_index:
            accepted = rec.client.stimulate(ladder_ma[k], 1000)
            print(f"pulse {k}: {ladder_ma[k]} mA at EMG sample {accepted.first_emg_index}")
            k += 1
            next_index += interval
        if k == len(ladder_ma) and rec.latest_emg_index() >= next_index:
            break
    rec.close()


def record_hreflex_protocol(name: str, key_file: pathlib.Path) -> None:
    """The real ``hreflex`` protocol through ``tonuslab record`` (time-compressed plan, which
    only the emulated device accepts)."""
    import subprocess

    cmd = [
        sys.executable, "-m", "tonuslab", "record", "sim://soleus_healthy?seed=3&speed=realtime",
        "-o", str(SESSIONS / f"{name}.h5"), "--overwrite", "--plain", "--protocol", "hreflex",
        "--key-file", str(key_file), "--time-scale", "0.05", "--emg-rate", "5000",
        "--n-emg", "1", "--angle-rate", "100", "--ladder", "6,10,14,18,22,26,30",
        "--ladder-repeats", "1", "--order", "ascending", "--rate-blocks", "1",
        "--pair-intervals", "2.5", "--test-intensity", "14", "--subject", "VP-soleus-healthy-3",
        "--muscle", "soleus", "--side", "right", "--joint", "ankle", "--operator", "emu",
        "--notes", "virtual patient soleus_healthy, seed 3; hreflex protocol, time scale 0.05",
    ]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True)


RECORDINGS = {
    "stretch_mild_elbow": lambda key: record_stretch("stretch_mild_elbow"),
    "hreflex_soleus_spastic": lambda key: record_hreflex("hreflex_soleus_spastic", key),
    "hreflex_protocol_soleus_healthy": lambda key: record_hreflex_protocol(
        "hreflex_protocol_soleus_healthy", key
    ),
}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from firmware_iface.auth import new_key, write_key_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        choices=sorted(RECORDINGS),
        action="append",
        help="regenerate only these (the others keep their expectation)",
    )
    args = parser.parse_args(argv)
    names = args.only or list(RECORDINGS)
    SESSIONS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        key_file = write_key_file(pathlib.Path(tmp) / "stim.key", new_key())
        for name in names:
            RECORDINGS[name](key_file)
    path = HERE / "expected.json"
    expected = json.loads(path.read_text()) if path.exists() else {}
    for name in names:
        capture = SESSIONS / f"{name}.capture"
        target = HERE / f"{name}.capture"
        capture.replace(target)
        with open_session(SESSIONS / f"{name}.h5", mode="r+") as s:
            s.file.attrs["capture_file"] = f"../captures/{target.name}"
        live = describe(SESSIONS / f"{name}.h5")
        with tempfile.TemporaryDirectory() as tmp:
            replayed = describe(replay_capture(target, pathlib.Path(tmp) / "r.h5"))
        if (live["emg_sha256"], live["angle_sha256"]) != (
            replayed["emg_sha256"],
            replayed["angle_sha256"],
        ):
            raise SystemExit(f"{name}: replay differs from the live session")
        expected[target.name] = {"session": f"../sessions/{name}.h5", **replayed}
        print(name, json.dumps(replayed))
    path.write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
