"""The browser view: live traces while recording (``record --view``) and review (``view``).

- :mod:`tonuslab.view.decimate`: min/max/envelope columns (what is sent instead of samples).
- :mod:`tonuslab.view.live`: :class:`LiveModel`, fed by the recorder's listeners.
- :mod:`tonuslab.view.review`: :class:`ReviewModel`, windows read from a session file.
- :mod:`tonuslab.view.server`: :class:`ViewServer`, the token-checked HTTP server.
- ``assets/``: the page, its hand-written JavaScript and CSS (shipped in the package).
"""

from tonuslab.view.server import ViewServer

__all__ = ["ViewServer", "lan_warning"]


def lan_warning(host: str) -> str | None:
    """The warning printed when the view is served beyond loopback (None on loopback)."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return None
    return (
        f"warning: the view is served on {host}, reachable from the network: anyone with the "
        "link (it carries the token) can watch the signals and stop the recording"
    )
