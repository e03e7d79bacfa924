"""Fault injection for the crash tests: `LITONG_FAULT=<point>` kills this process with SIGKILL when the
code reaches that named point, exactly as `kill -9` would, at a place chosen by the test, not by timing.

Points are plain names in the code (`faults.point("ledger_exports:mid")`). Unset in production: a
point then costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "LITONG_FAULT"


def point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
