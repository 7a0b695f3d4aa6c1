"""The bad-input catalogue (``docs/errors.md``): one test per entry.

Every entry checks the three promises: one line naming the problem (and what to do), exit code 2
from the CLI or the documented exception from the API, and no recorded data lost or changed.
The CLI runs as a real subprocess, as a technician would run it.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRETCH_SESSION = ROOT / "data" / "sessions" / "stretch_mild_elbow.h5"


def cli(*args: str, cwd: pathlib.Path, timeout: float = 120) -> tuple[int, list[str]]:
    """Run ``tonuslab ARGS``; returns the exit code and stderr's non-empty lines."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "tonuslab", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    return proc.returncode, [line for line in proc.stderr.splitlines() if line.strip()]


def assert_user_error(code: int, lines: list[str], *words: str) -> None:
    """Exit 2, exactly one error line, no traceback, naming the problem."""
    assert code == 2, (code, lines)
    errors = [line for line in lines if line.startswith("tonuslab: error:")]
    assert len(errors) == 1, lines
    assert not any("Traceback" in line for line in lines), lines
    for word in words:
        assert word.lower() in errors[0].lower(), (word, errors[0])


def digest(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def session(tmp_path) -> pathlib.Path:
    path = tmp_path / "session.h5"
    shutil.copy(STRETCH_SESSION, path)
    return path


def _rewrite(path: pathlib.Path, out: pathlib.Path, **changes) -> pathlib.Path:
    """A copy of a session with its arrays or channel table changed (through the writer)."""
    from acquire.session_file import open_session, write_session

    with open_session(path) as s:
        channels = list(s.channels)
        kwargs = dict(
            emg_counts=s.emg.counts[()], emg_rate_hz=s.emg_rate_hz, channels=channels,
            angle_counts=s.angle.counts[()], angle_rate_hz=s.angle_rate_hz,
            metadata={k: v for k, v in s.metadata.items() if v not in (None, "")},
        )  # fmt: skip
    kwargs.update(changes)
    return write_session(out, overwrite=True, **kwargs)


# ------------------------------------------------------------------ session files
def test_e01_truncated_session_file(session, tmp_path):
    data = session.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    before = digest(cut)
    code, lines = cli("analyze", str(cut), cwd=tmp_path)
    assert_user_error(code, lines, "cut.h5", "recover")
    assert digest(cut) == before


def test_e02_corrupt_session_file(session, tmp_path):
    data = bytearray(session.read_bytes())
    data[0:8] = b"\x00" * 8  # the HDF5 signature gone
    bad = tmp_path / "corrupt.h5"
    bad.write_bytes(bytes(data))
    before = digest(bad)
    code, lines = cli("analyze", str(bad), cwd=tmp_path)
    assert_user_error(code, lines, "corrupt.h5")
    assert digest(bad) == before


def test_e03_hdf5_from_another_system(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.zeros(10)
    code, lines = cli("report", str(other), "-o", "r.html", cwd=tmp_path)
    assert_user_error(code, lines, "not a tonuslab session")
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(
    ("version", "words"),
    [("2.0", ("newer", "upgrade")), ("0.9", ("older",))],
)
def test_e04_e05_newer_or_older_schema(session, tmp_path, version, words):
    with h5py.File(session, "r+") as f:
        f.attrs["format_version"] = version
    before = digest(session)
    code, lines = cli("analyze", str(session), cwd=tmp_path)
    assert_user_error(code, lines, version, *words)
    assert digest(session) == before


def test_e06_missing_channels(session, tmp_path):
    from acquire.session_file import open_session

    with open_session(session) as s:
        emg_only = [c for c in s.channels if c["kind"] == "emg"]
    no_angle = _rewrite(session, tmp_path / "no_angle.h5", channels=emg_only, angle_counts=None,
                        angle_rate_hz=None)  # fmt: skip
    # EMG alone is analysed as bursts (issue 17): a burst table, not a refusal
    from tonuslab.analysis import analyze_file

    summary = analyze_file(no_angle, write=False)
    assert summary["analyses"] == ["emg_bursts"] and summary["bursts"]
    # flat EMG and no angle: nothing to analyse, one line, the file untouched
    zeros = np.zeros((4000, len(emg_only)), np.int32)
    flat = _rewrite(session, tmp_path / "flat.h5", channels=emg_only, angle_counts=None,
                    angle_rate_hz=None, emg_counts=zeros)  # fmt: skip
    before = digest(flat)
    code, lines = cli("analyze", str(flat), cwd=tmp_path)
    assert_user_error(code, lines, "angle")
    assert digest(flat) == before


def test_e07_empty_session(session, tmp_path):
    empty = _rewrite(
        session, tmp_path / "empty.h5", emg_counts=np.zeros((0, 2), np.int32),
        angle_counts=np.zeros((0, 1), np.int32),
    )  # fmt: skip
    code, lines = cli("analyze", str(empty), cwd=tmp_path)
    assert_user_error(code, lines, "no samples")


def test_e08_nan_and_inf_samples_in_the_api():
    from dsp import SignalError
    from dsp.stretch_reflex import analyze_stretch_reflex

    emg = np.zeros((4000, 1))
    angle = np.linspace(0, 90, 1000)
    emg[100] = np.inf
    with pytest.raises(SignalError, match=r"(?i)inf|finite"):
        analyze_stretch_reflex(emg, 2000.0, angle, 500.0)


def test_e08_infinite_samples_in_an_imported_csv(tmp_path):
    """Inf is refused with the row named; NaN and empty cells are gaps (tests/tonuslab)."""
    csv = tmp_path / "inf.csv"
    t = np.arange(2000) / 1000.0
    rows = ["time,emg,angle"] + [
        f"{a:.4f},{b},{c:.3f}"
        for a, b, c in zip(
            t, np.where(np.arange(2000) == 500, np.inf, 1.0), np.linspace(0, 90, 2000), strict=True
        )
    ]
    csv.write_text("\n".join(rows))
    code, lines = cli("import", str(csv), "-o", "s.h5", "--time", "time", "--emg", "emg",
                      "--angle", "angle", cwd=tmp_path)  # fmt: skip
    assert_user_error(code, lines, "infinite value at data row 501")
    assert not (tmp_path / "s.h5").exists()


def test_e09_saturated_channel_is_not_read_as_no_reflex(session, tmp_path):
    from acquire.session_file import open_session

    with open_session(session) as s:
        counts = s.emg.counts[()]
    saturated = _rewrite(session, tmp_path / "sat.h5",
                         emg_counts=np.full_like(counts, np.iinfo(np.int16).max))  # fmt: skip
    code, lines = cli("analyze", str(saturated), cwd=tmp_path)
    assert_user_error(code, lines, "saturat")


def test_e10_non_monotonic_timestamps_in_a_csv(tmp_path):
    csv = tmp_path / "time.csv"
    t = np.arange(2000) / 1000.0
    t[1000:1010] = t[1000:1010][::-1]
    rows = ["time,emg"] + [f"{a:.4f},1.0" for a in t]
    csv.write_text("\n".join(rows))
    code, lines = cli("import", str(csv), "-o", "s.h5", "--time", "time", "--emg", "emg",
                      cwd=tmp_path)  # fmt: skip
    assert_user_error(code, lines, "time")
    assert not (tmp_path / "s.h5").exists()


def test_e11_edf_with_wrong_units(tmp_path):
    pyedflib = pytest.importorskip("pyedflib")
    edf = tmp_path / "units.edf"
    writer = pyedflib.EdfWriter(str(edf), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    writer.setSignalHeaders([{
        "label": "EMG biceps", "dimension": "degC", "sample_frequency": 1000,
        "physical_min": -100.0, "physical_max": 100.0, "digital_min": -32768,
        "digital_max": 32767, "transducer": "", "prefilter": "",
    }])  # fmt: skip
    writer.writeSamples([np.zeros(5000)])
    writer.close()
    code, lines = cli("import", str(edf), "-o", "s.h5", cwd=tmp_path)
    assert_user_error(code, lines, "unit")
    assert not (tmp_path / "s.h5").exists()


# ------------------------------------------------------------------ devices
class FakeTcpDevice:
    """A device at the outer edge: accepts one host and answers with ``reply(data)``."""

    def __init__(self, reply):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.reply = reply
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                answer = self.reply(data)
                if answer:
                    conn.sendall(answer)

    def close(self):
        self.server.close()


def test_e12_device_that_never_answers(tmp_path):
    device = FakeTcpDevice(lambda data: b"")
    try:
        code, lines = cli("record", device.url, "-o", "x.h5", "--duration", "1", "--plain",
                          cwd=tmp_path)  # fmt: skip
    finally:
        device.close()
    assert_user_error(code, lines, "answer")
    assert not (tmp_path / "x.h5").exists()


def test_e13_unknown_reply(tmp_path):
    from firmware_iface.codec import encode_frame

    device = FakeTcpDevice(lambda data: encode_frame(0xBE, 0, 0, b"what?"))
    try:
        code, lines = cli("record", device.url, "-o", "x.h5", "--duration", "1", "--plain",
                          cwd=tmp_path)  # fmt: skip
    finally:
        device.close()
    assert_user_error(code, lines, "unknown")


def test_e14_configuration_the_device_rejects(tmp_path):
    from firmware_iface.emulator import TcpEmulator
    from firmware_iface.emulator.device import EmulatedDevice

    emulator = TcpEmulator(EmulatedDevice(max_emg_channels=8))
    try:
        code, lines = cli("record", emulator.url, "-o", "x.h5", "--n-emg", "16", "--duration", "1",
                          "--plain", cwd=tmp_path)  # fmt: skip
    finally:
        emulator.close()
    assert_user_error(code, lines, "8 EMG channels")
    assert not (tmp_path / "x.h5").exists()


def test_e15_stimulation_beyond_the_safety_limits():
    from firmware_iface.client import DeviceClient
    from firmware_iface.emulator import emulator_link, make_device
    from firmware_iface.errors import StimulationRefused

    key = bytes(range(32))
    with DeviceClient(emulator_link(make_device(stim_key=key)), stim_key=key) as client:
        client.identify()
        with pytest.raises(StimulationRefused, match=r"(?i)limit|intensity"):
            client.stimulate(500.0, 1000)


def test_e16_stimulation_without_authentication(tmp_path):
    code, lines = cli("record", "sim://soleus_healthy?seed=1", "-o", "h.h5", "--protocol",
                      "hreflex", "--duration", "5", "--plain", cwd=tmp_path)  # fmt: skip
    assert_user_error(code, lines, "key")


def test_e16_device_refuses_an_unsigned_stimulate():
    from firmware_iface.codec import StreamDecoder, encode_frame
    from firmware_iface.emulator import make_device
    from firmware_iface.messages import ErrorCode, ErrorReply, MsgType, Stimulate

    device = make_device(stim_key=bytes(range(32)))
    unsigned = Stimulate(0, 1, 10_000, 1000, 0, 1, 1_000_000, mac=b"\x00" * 16)
    device.receive(encode_frame(MsgType.STIMULATE, 1, 0, unsigned.pack()))
    (reply,) = StreamDecoder().feed(device.take_output())
    assert reply.msg_type == MsgType.ERROR
    assert ErrorReply.unpack(reply.payload).code in (ErrorCode.AUTH_FAILED, ErrorCode.MALFORMED)
    assert not device._pulses


# ------------------------------------------------------------------ the command line
@pytest.mark.parametrize(
    "args",
    [
        ("analyze",),
        ("record", "sim://simple", "-o", "x.h5", "--duration", "-3"),
        ("record", "sim://simple", "-o", "x.h5", "--emg-rate", "lots"),
        ("nonsense",),
        ("batch", "no-such-folder", "-o", "c.csv"),
        ("record", "gopher://device", "-o", "x.h5"),
    ],
)
def test_e17_wrong_cli_arguments(tmp_path, args):
    code, lines = cli(*args, cwd=tmp_path)
    assert_user_error(code, lines)


def test_e18_existing_output_is_never_overwritten_by_accident(session, tmp_path):
    before = digest(session)
    code, lines = cli("record", "sim://simple?seed=1", "-o", str(session), "--duration", "1",
                      "--plain", cwd=tmp_path)  # fmt: skip
    assert_user_error(code, lines, "exists")
    assert digest(session) == before


# ------------------------------------------------------------------ LSL sources (lsl://)
def test_e19_no_lsl_stream_within_the_timeout(tmp_path):
    code, lines = cli("record", "lsl://NoSuchStream?timeout=1", "-o", "x.h5", cwd=tmp_path)
    assert_user_error(code, lines, "no LSL stream", "NoSuchStream", "tonuslab devices")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("query", "words"),
    [("emg=0&angle=7", ("angle=7", "has 3 channels")), ("emg=0,1", ("'counts'", "emg_unit="))],
)
def test_e20_lsl_channel_out_of_range_or_unknown_unit(tmp_path, query, words):
    pylsl = pytest.importorskip("pylsl")
    name = f"E20-{os.getpid()}-{len(query)}"
    info = pylsl.StreamInfo(name, "EMG", 3, 1000.0, pylsl.cf_float32, name)
    chans = info.desc().append_child("channels")
    for label, unit in (("E0", "uV"), ("raw", "counts"), ("knee", "deg")):
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
    outlet = pylsl.StreamOutlet(info)
    code, lines = cli("record", f"lsl://{name}?{query}&timeout=5", "-o", "x.h5", cwd=tmp_path)
    assert_user_error(code, lines, *words)
    assert list(tmp_path.iterdir()) == []
    del outlet


def test_e21_lsl_rate_changing_mid_recording():
    """API level (the CLI case, a stream back at another rate after --reconnect with the file
    kept, is tests/tonuslab/test_record_lsl_cli.py::test_rate_change_mid_recording_exits_2...)."""
    from acquire.errors import SourceRateChangedError
    from acquire.sources import decoder_for
    from acquire.sources.base import Chunk
    from acquire.sources.lsl_url import parse_lsl_url

    url = "lsl://Amp"
    main = {"name": "Amp", "rate_hz": 2000.0, "channel_count": 1, "channel_format": "float32",
            "channels": [{"label": "E0", "unit": "uV", "type": "EMG"}]}  # fmt: skip
    dec = decoder_for(url, {"url": url, "options": parse_lsl_url(url).to_dict(),
                            "streams": {"emg": main, "angle": None, "markers": None}})  # fmt: skip
    idx = np.arange(1000)
    with pytest.raises(SourceRateChangedError, match="declares 2000 Hz but its samples come at 1"):
        for i in range(0, 20000, 1000):
            arrays = {"values": np.zeros((1000, 1), np.float32), "stamps": (i + idx) / 1000.0}
            dec.feed(Chunk("data", {"stream": "emg"}, arrays, 0.0))


# ----------------------------------------------------------------------------- issue 19
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_e52_unreachable_trigno_or_missing_bitalino_port(tmp_path):
    code, lines = cli("record", f"trigno://127.0.0.1:{_free_port()}", "-o", "x.h5", cwd=tmp_path)
    assert_user_error(code, lines, "cannot connect to the Trigno Control Utility")
    code, lines = cli("record", "bitalino:///dev/ttyUSB_nope", "-o", "x.h5", cwd=tmp_path)
    assert_user_error(code, lines, "cannot open /dev/ttyUSB_nope")
    assert list(tmp_path.iterdir()) == []


def test_e53_wrong_device_on_the_port(tmp_path):
    from firmware_iface.emulator.bitalino import BitalinoTcp

    with BitalinoTcp() as emu:  # a BITalino where a TCU is expected
        code, lines = cli("record", f"trigno://{emu.address}?timeout=1", "-o", "x.h5",
                          cwd=tmp_path)  # fmt: skip
    assert_user_error(code, lines, "no Trigno Control Utility answers")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "words"),
    [("trigno://127.0.0.1?mode=turbo", "mode must be avanti or legacy"),
     ("bitalino:///dev/x?rate=2000", "rate must be 1, 10, 100 or 1000 Hz"),
     ("bitalino:///dev/x?gonio=A2", "needs its two-point calibration")],
)  # fmt: skip
def test_e54_unsupported_mode_rate_or_option(tmp_path, url, words):
    code, lines = cli("record", url, "-o", "x.h5", cwd=tmp_path)
    assert_user_error(code, lines, words)


def test_e55_trigno_slot_without_a_sensor(tmp_path):
    from firmware_iface.emulator.trigno import TrignoDevice, TrignoServer

    with TrignoServer(TrignoDevice(profile="simple", emg_slots=(1,)), speed="fast") as srv:
        code, lines = cli("record", f"{srv.url}?emg=1,2", "-o", "x.h5", cwd=tmp_path)
    assert_user_error(code, lines, "no sensor is paired in slot 2")


def test_e56_corrupt_frames_are_counted_never_raised():
    from firmware_iface.foreign import bitalino as bp
    from firmware_iface.foreign import trigno as tp

    rng = np.random.default_rng(56)
    dec = bp.FrameDecoder(2)
    for _ in range(100):
        dec.feed(bytes(rng.integers(0, 256, 97).astype(np.uint8)))
    assert dec.stats.crc_errors > 0
    fdec = tp.FloatFrameDecoder(16)
    _, bad = fdec.feed(np.full(32, np.nan, np.float32).tobytes())
    assert bad.tolist() == [True, True] and fdec.stats.invalid_samples == 2


def test_e57_trigger_after_without_a_trigger_output(tmp_path):
    from firmware_iface.emulator.trigno import TrignoDevice, TrignoServer

    with TrignoServer(TrignoDevice(profile="simple"), speed="fast") as srv:
        code, lines = cli("record", srv.url, "-o", "x.h5", "--protocol", "hreflex",
                          "--trigger-after", "1", cwd=tmp_path)  # fmt: skip
    assert_user_error(code, lines, "has no stimulator trigger output")
    assert list(tmp_path.iterdir()) == []
