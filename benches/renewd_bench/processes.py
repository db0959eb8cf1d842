"""Processes the suite starts and what it reads about them: the cleanup registry
that stops everything started (daemons, clients, nginx, relays, Pebbles) on exit,
Ctrl-C or SIGTERM; stopping a process group; running a client to completion with
its wall time, CPU and peak RSS (run_timed); /proc readings (CPU, RSS, context
switches, peak-RSS reset); waiting until processes are quiet (settle); free
loopback ports; the load average."""

import atexit
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .common import Fail, PebbleStuck, log

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Everything we start, so that it can be stopped whatever happens.


class Cleanup:
    def __init__(self):
        self.procs = []  # Popen objects, each the leader of its own session
        self.pebbles = []
        self.relays = []
        self.lock = threading.Lock()
        self.done = False

    def add(self, proc):
        with self.lock:
            self.procs.append(proc)
        return proc

    def forget(self, proc):
        with self.lock:
            if proc in self.procs:
                self.procs.remove(proc)

    def run(self):
        if self.done:
            return
        self.done = True
        with self.lock:
            procs = list(reversed(self.procs))
            self.procs.clear()
        for p in procs:
            stop_process(p, timeout=5)
        for r in self.relays:
            r.stop()
        for pb in reversed(self.pebbles):
            pb.down()


CLEANUP = Cleanup()
atexit.register(CLEANUP.run)


class Interrupted(BaseException):
    """SIGINT/SIGTERM/SIGHUP: stop, clean up, keep the partial results."""


def _on_signal(signum, _frame):
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    log(f"signal {signum}: stopping everything started")
    raise Interrupted(signum)


def install_signal_handlers():
    """SIGINT, SIGTERM and SIGHUP raise Interrupted (main() installs them first)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def stop_process(p, timeout=10.0, sig=signal.SIGTERM):
    """Stops a process we started (and its process group, which it leads)."""
    if p.returncode is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    CLEANUP.forget(p)


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_timed(argv, env=None, log_path=None, timeout=None, pebble=None):
    """Runs argv to completion; returns (exit code, wall s, cpu s, peak RSS KiB).

    CPU and peak RSS are what GNU time reports for the command (`/usr/bin/time`,
    as `-v` prints them). Without it they come from wait4(2), whose ru_maxrss is
    at least this script's own RSS at fork time, so small programs look bigger.
    With `pebble`, a wedged Pebble raises PebbleStuck instead of waiting forever.
    """
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    stats = None
    if GNU_TIME:
        fd, stats = tempfile.mkstemp(prefix="time.", dir=str(log_path.parent) if log_path else None)
        os.close(fd)
        argv = [GNU_TIME, "-q", "-f", "%e %U %S %M", "-o", stats] + [str(a) for a in argv]
    try:
        t0 = time.perf_counter()
        p = CLEANUP.add(
            subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
        )
        deadline = time.monotonic() + timeout if timeout else None
        next_probe = time.monotonic() + 20
        while True:
            pid, status, ru = os.wait4(p.pid, 0 if not (deadline or pebble) else os.WNOHANG)
            if pid:
                break
            if deadline and time.monotonic() > deadline:
                stop_process(p, sig=signal.SIGKILL)
                raise Fail(f"timeout after {timeout}s: {' '.join(map(str, argv))}")
            if pebble and time.monotonic() > next_probe:
                if pebble.stuck():
                    stop_process(p, sig=signal.SIGKILL)
                    raise PebbleStuck(f"{argv[-1]} running")
                next_probe = time.monotonic() + 10
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        CLEANUP.forget(p)
        cpu, maxrss = ru.ru_utime + ru.ru_stime, ru.ru_maxrss
        if stats:
            fields = Path(stats).read_text().split("\n")
            last = [l for l in fields if l.strip()][-1].split()
            cpu, maxrss = float(last[1]) + float(last[2]), int(last[3])
        return p.returncode, wall, cpu, maxrss
    finally:
        if log_path:
            out.close()
        if stats:
            os.unlink(stats)


# /proc helpers


def proc_cpu(pid):
    """utime + stime of the whole process (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_kib(pid, key):
    return int(proc_status(pid)[key].split()[0])


def proc_ctxt(pid):
    """Voluntary and involuntary context switches of each thread: {tid: (vol, invol)}."""
    counts = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            st = proc_status(f"{pid}/task/{tid}")
        except FileNotFoundError:
            continue
        counts[tid] = (int(st.get("voluntary_ctxt_switches", 0)),
                       int(st.get("nonvoluntary_ctxt_switches", 0)))
    return counts


def ctxt_delta(before, after):
    """Switches between two proc_ctxt snapshots, over the threads alive at the end
    (a thread that exited in between takes its count with it), and how many exited."""
    vol = sum(v - before.get(t, (0, 0))[0] for t, (v, _) in after.items())
    invol = sum(i - before.get(t, (0, 0))[1] for t, (_, i) in after.items())
    return vol, invol, len(before.keys() - after.keys())


def reset_peak_rss(pid):
    """Resets VmHWM (Linux >= 4.0: writing 5 to clear_refs)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def settle(pids, quiet=1.0, timeout=120.0):
    """Waits until none of pids uses CPU for `quiet` seconds (ARI polls done, ...).

    Flushes the file systems first: a measurement must not pay for writeback
    queued by earlier work, nor for ext4 skipping inodes freed moments ago (a
    file system without a journal checks each candidate inode's deletion time;
    right after a previous run's work directory is removed, file creation
    costs several times its normal CPU)."""
    os.sync()
    deadline = time.monotonic() + timeout
    last = [proc_cpu(p) for p in pids]
    calm_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = [proc_cpu(p) for p in pids]
        if now != last:
            calm_since = time.monotonic()
            last = now
        elif time.monotonic() - calm_since >= quiet:
            return True
    log(f"warning: processes {pids} never went quiet within {timeout}s")
    return False


def free_ports(count):
    """Distinct free loopback ports (TCP, and UDP too, for challtestsrv's DNS)."""
    socks, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            try:
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.bind(("127.0.0.1", port))
                socks.append(u)
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def loadavg():
    return list(os.getloadavg())
