import sys

import pytest

from acquire import AcquisitionError
from acquire.links import BadLinkUrl, LinkUnavailable, SerialLink, open_link
from firmware_iface import auth
from firmware_iface.client import DeviceClient
from firmware_iface.emulator import PtyEmulator, TcpEmulator
from firmware_iface.link import SocketLink


def _identify_and_stream(link, seconds=0.5):
    c = DeviceClient(link, command_timeout_s=2.0)
    try:
        info = c.identify()
        c.start()
        n = 0
        while n < seconds * info.config.emg_rate_hz:
            n += sum(b.n_samples for b in c.read(1.0) if getattr(b, "stream", None) == 0)
        c.stop()
        assert c.stats.missing(0) == 0 and c.decoder.stats.errors == 0
        return info
    finally:
        c.close()


def test_sim_simple_streams():
    link = open_link("sim://simple?seed=3&speed=fast")
    assert link.device.source.ground_truth()["seed"] == 3
    assert _identify_and_stream(link).serial == "EMU-0001"


def test_sim_with_key_file_pairs_the_emulated_device(tmp_path):
    path = auth.write_key_file(tmp_path / "stim.key", bytes(32))
    link = open_link(f"sim://simple?key_file={path}&serial=BENCH-7")
    c = DeviceClient(link, stim_key=auth.load_key_file(path))
    try:
        assert c.identify().serial == "BENCH-7"
        c.start()
        assert c.stimulate(2.0, 200).counter == 1
    finally:
        c.close()


def test_tcp_link_to_emulator_server():
    with TcpEmulator(speed="fast") as server:
        link = open_link(server.url)
        assert isinstance(link, SocketLink)
        _identify_and_stream(link)


def test_serial_link_over_a_real_pty():
    with PtyEmulator(speed="fast") as pty:
        for url in (pty.path, f"serial://{pty.path}"):
            link = open_link(url)
            assert isinstance(link, SerialLink)
            _identify_and_stream(link, 0.3)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("", BadLinkUrl),
        ("gopher://x", BadLinkUrl),
        ("sim://", BadLinkUrl),
        ("sim://simple?speed=warp", BadLinkUrl),
        ("sim://simple?seed=abc", BadLinkUrl),
        ("sim://simple?colour=red", BadLinkUrl),
        ("tcp://127.0.0.1", BadLinkUrl),
        ("tcp://127.0.0.1:notaport", BadLinkUrl),
        ("tcp://127.0.0.1:1", LinkUnavailable),
        ("/dev/no-such-tty", LinkUnavailable),
        ("serial://", BadLinkUrl),
    ],
)
def test_bad_urls_raise_one_line_acquisition_errors(url, error):
    with pytest.raises(error) as err:
        open_link(url)
    assert isinstance(err.value, AcquisitionError)
    assert "\n" not in str(err.value) and str(err.value)


def test_sim_key_file_problems_are_user_errors(tmp_path):
    from tonuslab.errors import USER_ERRORS

    with pytest.raises(USER_ERRORS):
        open_link(f"sim://simple?key_file={tmp_path / 'missing.key'}")


def test_unknown_patient_profile_is_a_clear_error():
    with pytest.raises(AcquisitionError) as err:
        open_link("sim://no_such_profile_xyz")
    assert "no_such_profile_xyz" in str(err.value)


def test_ble_and_replay_hooks_are_lazy(monkeypatch):
    calls = []
    import types

    for name, func in (("acquire.ble", "open_ble_link"), ("acquire.replay", "open_replay_link")):
        module = types.ModuleType(name)
        setattr(module, func, lambda url, _f=func: calls.append((_f, url)) or "link")
        monkeypatch.setitem(sys.modules, name, module)
    assert open_link("ble://AA:BB:CC:DD:EE:FF") == "link"
    assert open_link("replay://capture.bin") == "link"
    assert calls == [("open_ble_link", "ble://AA:BB:CC:DD:EE:FF"),
                     ("open_replay_link", "replay://capture.bin")]  # fmt: skip


def test_sim_does_not_import_device_io_modules():
    import subprocess

    code = (
        "import sys; from acquire.links import open_link; l = open_link('sim://simple'); "
        "l.close(); print('serial' in sys.modules, 'bleak' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_sim_patient_profile_streams_through_the_emulator():
    pytest.importorskip("virtual_patient.source")
    link = open_link("sim://healthy?seed=2")
    info = _identify_and_stream(link, 0.5)
    assert len(info.emg_channels) >= 1
