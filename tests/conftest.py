"""Shared pytest configuration."""

import os
import pathlib
import sys

import pytest

# tests/naive.py (the NumPy references of the kernels) is imported as ``naive`` by the tests
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

# A writable, stable Numba cache for local runs (CI sets its own).
os.environ.setdefault(
    "NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parent.parent / ".numba_cache")
)


def _loopback_lsl() -> None:
    """Keep every LSL call of the suite (and of its subprocesses) on 127.0.0.1.

    liblsl's default discovery multicasts off the machine; ``tonuslab devices`` and ``lsl://``
    resolve streams, so the whole suite gets a loopback-only configuration (KnownPeers =
    {127.0.0.1}, ResolveScope = machine) and its own session id.
    """
    import tempfile
    import uuid

    if "LSLAPICFG" in os.environ:
        return
    from acquire.lsl import write_loopback_config

    folder = pathlib.Path(tempfile.mkdtemp(prefix="tonuslab-lsl-"))
    cfg = write_loopback_config(folder / "lsl.cfg", f"tonuslab-tests-{uuid.uuid4().hex[:8]}")
    os.environ["LSLAPICFG"] = str(cfg)


_loopback_lsl()


def pytest_collection_modifyitems(config, items):
    """Hypothesis tests time out with pytest-timeout's ``thread`` method.

    The default ``signal`` method raises a test failure inside the running example; hypothesis
    takes that as a found bug and starts shrinking, re-running slow examples with no further
    alarm, so a slow example could hang the run until CI's hard limit. The ``thread`` method
    dumps every stack and ends the run at once: a clear red instead of a hang.
    """
    import pytest

    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            marker = item.get_closest_marker("timeout")
            seconds = marker.args[0] if marker and marker.args else config.getini("timeout")
            item.add_marker(pytest.mark.timeout(float(seconds), method="thread"), append=False)


@pytest.fixture
def small_tmpfs(tmp_path):
    """``make(size_mib) -> folder``: a real, small filesystem (tmpfs) for full-disk tests.

    Skipped where mounting is not allowed (needs root); unmounted after the test.
    """
    import subprocess

    mounted = []

    def make(size_mib: float, name: str = "small"):
        mnt = tmp_path / name
        mnt.mkdir()
        size = f"{int(size_mib * 1024)}k"
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                             capture_output=True)  # fmt: skip
        if res.returncode != 0:
            pytest.skip("cannot mount a small filesystem here (needs root)")
        mounted.append(mnt)
        return mnt

    yield make
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
