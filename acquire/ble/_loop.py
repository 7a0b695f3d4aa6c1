"""An asyncio event loop running in a daemon thread (bleak and bumble are asyncio-only)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class LoopThread:
    """Run an asyncio event loop in a background daemon thread.

    The synchronous :class:`acquire.ble.BleLink` drives bleak from here. Tests start one, build
    the bumble link, central and emulated peripheral on it with :meth:`run`, and hand the loop to
    the BLE link so that everything shares one loop.
    """

    def __init__(self, name: str = "tonuslab-ble") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        # Cancel what is left so coroutines get their finally blocks.
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout_s: float | None = None) -> _T:
        """Run ``coroutine`` on the loop and wait for its result (raises what it raises)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop and join the thread (idempotent)."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
