"""What every module of the suite uses: where the repository is, the log line
format (seconds since the suite started, on stderr), the errors a measurement
raises (Fail, and PebbleStuck for a wedged Pebble) and fmt(), the number format
of the log lines and of the report."""

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
T_START = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T_START:7.1f}s] {msg}", file=sys.stderr, flush=True)


class Fail(Exception):
    """A measurement could not be taken."""


class PebbleStuck(Fail):
    """Pebble stopped answering: its in-memory store deadlocked (see docs/benchmarks.md)."""


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != 0 and abs(v) < 10 ** -digits:
            return f"{v:.{digits}g}"
        return f"{v:,.{digits}f}"
    return f"{v:,}"
