"""Pebble, the test CA every measurement runs against: one fresh Pebble (plus
challtestsrv) per measurement, on free loopback ports in its own state directory,
started and stopped with the project's tests/tools/pebble (up, down); detecting a Pebble whose
store deadlocked (stuck), and repeating a measurement on a fresh Pebble when that
happens (with_pebble)."""

import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from .common import REPO, Fail, PebbleStuck, log
from .processes import CLEANUP, free_ports, proc_cpu, stop_process

# The project's test tools: `pebble up|down`, `install-pebble [--with-lego]`.
TOOLS = REPO / "tests" / "tools"
PEBBLE_TOOL = TOOLS / "pebble"


class Pebble:
    """One pebble + challtestsrv from `tests/tools/pebble up`, on free ports, in its own
    state dir."""

    def __init__(self, state_dir):
        p = free_ports(6)
        self.state_dir = Path(state_dir)
        self.env = dict(
            os.environ,
            PEBBLE_PORT=str(p[0]),
            PEBBLE_MGMT_PORT=str(p[1]),
            CHALLTESTSRV_DNS_PORT=str(p[2]),
            CHALLTESTSRV_MGMT_PORT=str(p[3]),
            PEBBLE_HTTP01_PORT=str(p[4]),
            PEBBLE_TLSALPN01_PORT=str(p[5]),
            PEBBLE_STATE_DIR=str(self.state_dir),
            PEBBLE_VA_ALWAYS_VALID="1",
            PEBBLE_VA_NOSLEEP="1",
            PEBBLE_AUTHZREUSE="0",
            PEBBLE_WFE_NONCEREJECT="0",
            PEBBLE_PROFILES="default",
        )
        self.port = p[0]
        self.http01_port = p[4]
        self.dir_url = f"https://127.0.0.1:{self.port}/dir"
        self.ca = self.state_dir / "certs" / "ca.pem"
        self.pid = None
        self.up_ = False
        self.restarts = 0

    def up(self):
        if self not in CLEANUP.pebbles:
            CLEANUP.pebbles.append(self)
        self.up_ = True
        r = subprocess.run([str(PEBBLE_TOOL), "up"], env=self.env, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise Fail(f"tests/tools/pebble up failed:\n{r.stdout}\n{r.stderr}")
        self.pid = int((self.state_dir / "pebble.pid").read_text().strip())
        return self

    def down(self):
        if not self.up_:
            return
        self.up_ = False
        subprocess.run([str(PEBBLE_TOOL), "down"], env=self.env, capture_output=True)

    def cpu(self):
        return proc_cpu(self.pid)

    def stuck(self, timeout=5.0):
        """Whether Pebble's store lock is wedged: the management API's
        cert-status-by-serial takes it for reading and answers 404 at once otherwise."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        url = f"https://127.0.0.1:{self.env['PEBBLE_MGMT_PORT']}/cert-status-by-serial/1"
        try:
            urllib.request.urlopen(url, context=ctx, timeout=timeout)
        except urllib.error.HTTPError:
            return False
        except (TimeoutError, socket.timeout):
            return True
        except urllib.error.URLError as e:
            return isinstance(e.reason, (TimeoutError, socket.timeout))
        return False


def setup_failure(pb, what, log_path):
    """The error for a failed set-up run: PebbleStuck (the measurement is repeated on a
    fresh Pebble) when Pebble is wedged, which clients report as their own timeouts."""
    if pb.stuck():
        return PebbleStuck(f"{what} during set-up")
    return Fail(f"{what} failed; see {log_path}")


def with_pebble(work, label, fn, attempts=4):
    """Runs fn(pebble) against a fresh Pebble; a fresh one again if Pebble deadlocks."""
    for attempt in range(attempts):
        tag = label if attempt == 0 else f"{label}-retry{attempt}"
        pb = Pebble(work / f"pebble-{tag}")
        pb.tag = tag
        before = set(map(id, CLEANUP.procs))
        try:
            pb.up()
            result = fn(pb)
            if isinstance(result, dict):
                result["pebble_deadlocks"] = attempt
            return result
        except PebbleStuck as e:
            log(f"  Pebble deadlocked ({e}); retrying with a fresh Pebble")
            if attempt == attempts - 1:
                raise
        finally:
            # Whatever the measurement left running (a daemon waiting on a wedged CA).
            for proc in [p for p in list(CLEANUP.procs) if id(p) not in before]:
                stop_process(proc, timeout=10)
            pb.down()
