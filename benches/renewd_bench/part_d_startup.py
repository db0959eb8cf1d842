"""Part d, startup: --startup-n certificates issued by renewd itself (Pebble
restarted and issuing resumed when it deadlocks), then --startup-trials starts of
`renewd run`, each timed to READY=1 on $NOTIFY_SOCKET (NotifyListener), to the
control socket accepting a connection and to it answering {"cmd":"status"}
(control_status)."""

import json
import socket
import statistics
import threading
import time
from pathlib import Path

from .common import Fail, fmt, log
from .processes import proc_kib, settle
from .renewd import Daemon, renewd_issue_all


def control_status(sock_path, timeout=120.0):
    """Connects and sends {"cmd":"status"}. Returns None while nothing listens, else
    (time.time() connected, time.time() reply complete, reply bytes, certificates)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(sock_path))
    except (FileNotFoundError, ConnectionRefusedError):
        s.close()
        return None
    t_conn = time.time()
    try:
        s.sendall(b'{"cmd":"status"}\n')
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
        t_reply = time.time()
        reply = json.loads(buf)
        if not reply.get("ok"):
            raise Fail(f"status reply not ok: {bytes(buf[:200])!r}")
        return t_conn, t_reply, len(buf), len(reply.get("certificates", []))
    finally:
        s.close()


class NotifyListener:
    """A $NOTIFY_SOCKET (sd_notify datagrams); records when READY=1 arrives."""

    def __init__(self, path):
        self.path = Path(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.ready_at = None
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                msg = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if self.ready_at is None and b"READY=1" in msg.split(b"\n"):
                self.ready_at = time.time()

    def close(self):
        self.stopping = True
        self.thread.join()
        self.sock.close()
        self.path.unlink(missing_ok=True)


def start_trial(args, cfg, d, i, extra_env=None):
    """Starts `renewd run` on cfg (control socket d/control.sock) and times it to
    READY=1, to the control socket accepting and to its first status answer; then,
    once it is quiet, one more status query. Returns (the trial's figures, the
    running Daemon)."""
    sock = d / "control.sock"
    notify = NotifyListener(d / f"notify-{i}.sock")
    t0 = time.time()
    daemon = Daemon(args.renewd, cfg, d / f"renewd-start{i}.log",
                    extra_env=dict(extra_env or {}, NOTIFY_SOCKET=str(notify.path)))
    reply = None
    deadline = time.monotonic() + 120
    while reply is None:
        daemon.check()
        if time.monotonic() > deadline:
            raise Fail("the control socket never answered")
        reply = control_status(sock) if sock.exists() else None
        if reply is None:
            time.sleep(0.001)
    while notify.ready_at is None and time.monotonic() < deadline:
        daemon.check()
        time.sleep(0.005)
    notify.close()
    rss = proc_kib(daemon.pid, "VmRSS")
    # With 100,000 certificates ARI polls go out several times a second, and
    # the daemon is never quiet for long.
    settle([daemon.pid], quiet=1.0, timeout=60)
    q = control_status(sock)  # on the running, settled daemon
    trial = {
        "t0": t0,
        "ready_s": notify.ready_at - t0 if notify.ready_at else None,
        "socket_accepts_s": reply[0] - t0,
        "status_answered_s": reply[1] - t0,
        "status_reply_bytes": reply[2],
        "status_reply_certificates": reply[3],
        "status_query_when_running_s": q[1] - q[0],
        "rss_after_ready_kib": rss,
    }
    log(f"  startup trial {i + 1}: READY {fmt(trial['ready_s'], 3)} s, socket accepts "
        f"{trial['socket_accepts_s']:.3f} s, status answered "
        f"{trial['status_answered_s']:.3f} s")
    return trial, daemon


def bench_startup(args, pb):
    n = args.startup_n
    d = args.work / pb.tag
    daemon, live, names, issue_s, cfg = renewd_issue_all(
        args, pb, d, n, args.concurrency, resumable=True,
        issue_concurrency=args.startup_issue_concurrency)
    log(f"  startup: {n} issued in {issue_s:.1f}s ({n / issue_s:.0f}/s at max_concurrent "
        f"{args.startup_issue_concurrency}, {pb.restarts} Pebble restarts); settling")
    settle([daemon.pid, pb.pid], quiet=2.0, timeout=300)
    daemon.stop()
    trials = []
    for i in range(args.startup_trials):
        trial, daemon = start_trial(args, cfg, d, i)
        daemon.stop()
        trials.append(trial)

    def med(key):
        vals = [t[key] for t in trials if t[key] is not None]
        return statistics.median(vals) if vals else None

    return {"n": n, "initial_issue_s": issue_s,
            "issue_concurrency": args.startup_issue_concurrency,
            "pebble_restarts_while_issuing": pb.restarts,
            "trials": trials,
            "ready_s": med("ready_s"), "status_answered_s": med("status_answered_s"),
            "socket_accepts_s": med("socket_accepts_s"),
            "status_query_when_running_s": med("status_query_when_running_s"),
            "rss_after_ready_kib": med("rss_after_ready_kib")}
