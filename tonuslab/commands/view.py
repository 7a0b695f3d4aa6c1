"""``tonuslab view FILE.h5``: review a recorded or imported session in the browser.

Serves the same page as ``record --view`` on 127.0.0.1 (``--host`` to expose it, with a warning),
prints ``review: http://127.0.0.1:PORT/?token=...`` and serves until Ctrl-C. The page reads
windows of the file on demand (min/max per pixel column), never the whole file.
"""

from __future__ import annotations

import pathlib
import signal
import threading

from tonuslab.errors import UsageError

NAME = "view"
HELP = "Review a session file in the browser (scroll, zoom, events and stored analysis)."


def add_arguments(parser) -> None:
    parser.add_argument("file", type=pathlib.Path, help="session file (.h5)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="interface to serve on (default 127.0.0.1; another one exposes it on the network)",
    )  # fmt: skip
    parser.add_argument("--open", action="store_true", help="open the default browser")
    parser.add_argument("--run", help="stored analysis run to overlay (default: default)")
    parser.add_argument(
        "--seconds", type=float, help="stop serving after this many seconds (scripts, tests)"
    )


def run(args) -> int:
    from tonuslab.view import ViewServer, lan_warning
    from tonuslab.view.review import ReviewModel

    if not args.file.exists():
        raise UsageError(f"no such file: {args.file}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    model = ReviewModel(args.file, run=args.run)
    try:
        server = ViewServer(model, host=args.host, port=args.port).start()
        warning = lan_warning(args.host)
        if warning:
            print(warning, flush=True)
        print(f"review: {server.url}", flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(server.url)
        done = threading.Event()
        old = {s: signal.signal(s, lambda *_: done.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            done.wait(args.seconds)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            server.stop()
    finally:
        model.close()
    return 0
