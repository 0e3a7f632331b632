"""Process-level state of a local-engine worker: it never outlives the build that started it."""

from __future__ import annotations

import os
import signal
import threading
import time

_PARENT_PID: int | None = None  # set in local-engine workers

# modules the forkserver imports once, so that recycled workers start in milliseconds
PRELOAD = ["agent.dataset.case", "agent.case", "perception.findings", "perception.keyimages", "perception.io",
           "perception.dicom", "templates.render", "reasoning.report"]


def exit_if_orphaned() -> None:
    if _PARENT_PID is None:
        return
    try:
        os.kill(_PARENT_PID, 0)
    except ProcessLookupError:
        os._exit(3)  # the build was killed: do not outlive it
    except PermissionError:
        pass


def worker_init(parent_pid: int) -> None:
    global _PARENT_PID
    _PARENT_PID = parent_pid
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle

    def watch() -> None:
        while True:
            time.sleep(0.2)
            exit_if_orphaned()

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
