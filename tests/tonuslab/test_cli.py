import subprocess
import sys

from tonuslab.cli import main


def test_help_lists_commands_and_exits_zero(capsys):
    try:
        main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "usage: tonuslab" in out


def test_unknown_command_is_usage_error_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "tonuslab", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
