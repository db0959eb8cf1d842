"""Part c, the idle daemon: a fresh `renewd run` on --idle-n issued certificates,
none due, observed for --idle-seconds once it is quiet: RSS, CPU, context
switches of every thread, wake-ups (epoll waits and futex calls, with perf), log
lines, and the ARI polls Pebble logged meanwhile."""

import os
import shutil
import subprocess
import time

from .common import log
from .processes import ctxt_delta, proc_cpu, proc_ctxt, proc_status, settle
from .renewd import renewd_issue_all


def perf_usable():
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "stat", "-x,", "-e", "syscalls:sys_enter_epoll_wait",
                        "--", "true"], capture_output=True, text=True)
    return r.returncode == 0 and "not supported" not in r.stderr and "<not" not in r.stderr


PERF_EVENTS = ["syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_pwait",
               "syscalls:sys_enter_futex", "context-switches"]


def bench_idle(args, pb):
    n = args.idle_n
    d = args.work / pb.tag
    # A fresh process on the issued state: what a daemon looks like between renewals.
    daemon, live, names, issue_s, cfg = renewd_issue_all(args, pb, d, n, args.concurrency)
    time.sleep(1)
    settle([daemon.pid, pb.pid], quiet=2.0)
    log(f"  idle: measuring {args.idle_seconds}s with {n} certificates")
    lines0 = len(daemon.log_path.read_text(errors="replace").splitlines())
    polls0 = ari_polls(pb)
    cpu0, ctxt0 = proc_cpu(daemon.pid), proc_ctxt(daemon.pid)
    perf = {}
    use_perf = perf_usable()
    if use_perf:
        out = d / "perf-stat.csv"
        # -t with every thread: `perf stat -p` counts nothing on some kernels.
        tids = ",".join(sorted(os.listdir(f"/proc/{daemon.pid}/task"), key=int))
        subprocess.run(["perf", "stat", "-x,", "-o", str(out)]
                       + sum((["-e", e] for e in PERF_EVENTS), [])
                       + ["-t", tids, "--", "sleep", str(args.idle_seconds)],
                       capture_output=True, text=True)
        for line in out.read_text().splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[2] in PERF_EVENTS:
                # "<not counted>": the counter never ran because no thread was ever
                # scheduled in, i.e. nothing happened.
                perf[parts[2]] = 0 if parts[0] == "<not counted>" else int(parts[0])
    else:
        time.sleep(args.idle_seconds)
    daemon.check()
    cpu1, ctxt1 = proc_cpu(daemon.pid), proc_ctxt(daemon.pid)
    vol, invol, exited = ctxt_delta(ctxt0, ctxt1)
    st = proc_status(daemon.pid)
    lines1 = len(daemon.log_path.read_text(errors="replace").splitlines())
    polls = ari_polls(pb) - polls0
    daemon.stop()
    epoll = None
    if perf:
        epoll = sum(v for k, v in perf.items() if "epoll" in k and v is not None)
    return {
        "n": n, "seconds": args.idle_seconds,
        "rss_kib": int(st["VmRSS"].split()[0]), "peak_rss_kib": int(st["VmHWM"].split()[0]),
        "threads": int(st["Threads"]),
        "cpu_s": cpu1 - cpu0, "voluntary_ctxt_switches": vol,
        "nonvoluntary_ctxt_switches": invol, "threads_exited": exited,
        "perf": perf, "epoll_waits": epoll, "log_lines": lines1 - lines0,
        "ari_polls": polls, "initial_issue_s": issue_s,
    }


def ari_polls(pb):
    """renewalInfo requests Pebble has logged so far (the daemon's scheduled work)."""
    text = (pb.state_dir / "pebble.log").read_text(errors="replace")
    return text.count("/renewalInfo/")
