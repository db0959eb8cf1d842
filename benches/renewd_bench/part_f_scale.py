"""Part f, scale: what one daemon with N certificates costs, for each N of
--scale-n, each on its own (`--parts f --scale-n 100000`). The N certificates
come from the cache (cache.py; issued on the first run). A fresh Pebble behind
nginx, which answers renewalInfo itself (the cached set was issued by an earlier
Pebble), and a private copy of the set; then, in order:

  check-config      `renewd check-config`, median of 3
  startup           --startup-trials starts: READY=1, first status answer, RSS
  status            on the running daemon: `renewd status NAME` (median of 5),
                    `status --json` (median of 3), the table, `--problems`
  reload            `reload-config` on the control socket (SIGHUP's path), and
                    SIGHUP to the `config reloaded` log line, median of 3 each
  idle              --idle-seconds: RSS, CPU, wake-ups (perf), context switches,
                    bytes written, ARI polls per second (nginx's log)
  ARI polls         every renewalInfo request nginx saw from the first start on:
                    the largest number started in one second, and the most in
                    flight as the daemon logs it (`ARI poll` debug lines)
  forced renewal    `renewd renew --force NAME`: bytes written (/proc/PID/io)
  mass renewal      SIGUSR1: bytes written per renewal over the whole mass
                    renewal, or its first --scale-mass-seconds at larger N
"""

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import time
from collections import Counter

from .cache import materialize
from .common import Fail, fmt, log
from .part_c_idle import PERF_EVENTS, perf_usable
from .part_d_startup import start_trial
from .processes import ctxt_delta, proc_cpu, proc_ctxt, proc_status, settle, stop_process
from .relay import NGINX, NginxRelay
from .renewd import live_version, log_times, names_for, write_renewd_config

# The daemon logs at info, its ARI polls at debug (with the number in flight).
LOG_FILTER = "info,renewd::daemon::scheduler::ari=debug"


def proc_io(pid):
    """/proc/PID/io: write_bytes (what reached the block layer on the process's
    behalf), wchar (bytes passed to write(2)), syscw."""
    out = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = int(v)
    return out


def io_delta(a, b):
    return {k: b[k] - a[k] for k in ("write_bytes", "wchar", "syscw", "read_bytes")}


def timed(argv, runs, env=None):
    """Median wall time of `runs` runs of argv (each must exit 0 or 1), and the last
    run's stdout."""
    walls, out = [], ""
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True, env=env)
        walls.append(time.perf_counter() - t0)
        if r.returncode not in (0, 1):
            raise Fail(f"{' '.join(map(str, argv))} exited {r.returncode}: {r.stderr[-500:]}")
        out = r.stdout
    return statistics.median(walls), walls, out


def control(sock, request, timeout=300.0):
    """One request on the control socket; (seconds to the complete reply, reply)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(sock))
    t0 = time.perf_counter()
    try:
        s.sendall(json.dumps(request).encode() + b"\n")
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
        return time.perf_counter() - t0, json.loads(buf)
    finally:
        s.close()


def ari_window():
    """A window a few weeks out: nothing becomes due while measuring."""
    now = time.time()

    def iso(t):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    return iso(now + 20 * 86400), iso(now + 25 * 86400)


def poll_times(relay, since=0.0):
    return [t for (t, m, p) in relay.requests if "/renewalInfo/" in p and t >= since]


def per_second_max(times):
    return max(Counter(int(t) for t in times).values()) if times else 0


IN_FLIGHT = re.compile(r"in_flight=(\d+)")


def max_in_flight(log_paths):
    best = 0
    for path in log_paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if "ARI poll" in line:
                m = IN_FLIGHT.search(line)
                if m:
                    best = max(best, int(m.group(1)))
    return best


def bench_scale(args, pb, n, meta):
    if not NGINX:
        raise Fail("part f needs nginx (it answers renewalInfo for the cached set)")
    d = args.work / pb.tag
    d.mkdir(parents=True, exist_ok=True)
    relay = NginxRelay(pb, d, ari_window=ari_window()).start()
    daemon = None
    try:
        state = materialize(args, n, d)
        cfg = d / "renewd.toml"
        write_renewd_config(cfg, state, d / "control.sock", relay.dir_url, pb.ca,
                            pb.http01_port, names_for(n), args.scale_concurrency)
        os.sync()
        r = {"n": n, "set": meta, "max_concurrent": args.scale_concurrency}
        cli = [str(args.renewd), "--config", str(cfg)]
        r["check_config_s"], r["check_config_runs"], _ = timed(cli + ["check-config"], 3)
        log(f"  check-config: {r['check_config_s']:.3f} s")
        env = {"RENEWD_LOG": LOG_FILTER}
        trials = []
        for i in range(args.startup_trials):
            trial, daemon = start_trial(args, cfg, d, i, extra_env=env)
            trial["ari_polls_first_60s"] = len(
                [t for t in poll_times(relay, trial["t0"]) if t < trial["t0"] + 60])
            trials.append(trial)
            if i < args.startup_trials - 1:
                daemon.stop()
        r["startup_trials"] = trials
        for k in ("ready_s", "status_answered_s", "rss_after_ready_kib"):
            vals = [t[k] for t in trials if t[k] is not None]
            r[k] = statistics.median(vals) if vals else None
        r.update(status_figures(args, cli, d, n))
        r.update(reload_figures(d, daemon))
        settle([daemon.pid], quiet=2.0, timeout=120)
        r["idle"] = idle_figures(args, daemon, relay)
        r["forced_one"] = forced_one(cli, daemon, n)
        r["mass"] = mass_bytes(args, daemon, state / "live", n, pb)
        polls = poll_times(relay, trials[0]["t0"])
        r["ari"] = {
            "polls_seen": len(polls),
            "observed_s": (polls[-1] - trials[0]["t0"]) if polls else None,
            "max_per_second": per_second_max(polls),
            "max_per_second_idle": r["idle"]["ari_polls_max_per_second"],
            "max_in_flight": max_in_flight(list(d.glob("renewd-start*.log"))),
            "expected_per_second": n / 21600,
        }
        daemon.stop()
        daemon = None
        relay.dump(d / "relay-requests.log")
        return r
    finally:
        if daemon:
            daemon.stop()
        relay.stop()


def status_figures(args, cli, d, n):
    name = names_for(n)[n // 2]
    out = {}
    out["status_name_s"], out["status_name_runs"], text = timed(cli + ["status", name], 5)
    if name not in text:
        raise Fail(f"`renewd status {name}` did not show it: {text[:300]}")
    out["status_json_s"], out["status_json_runs"], text = timed(cli + ["status", "--json"], 3)
    got = len(json.loads(text)["certificates"])
    if got != n:
        raise Fail(f"status --json listed {got} certificates, not {n}")
    out["status_table_s"], _, text = timed(cli + ["status"], 1)
    out["status_table_first_line"] = text.splitlines()[0] if text else ""
    out["status_problems_s"], _, text = timed(cli + ["status", "--problems"], 1)
    out["status_problems_lines"] = len(text.splitlines())
    out["status_socket_s"], _ = control(d / "control.sock", {"cmd": "status"})
    log(f"  status NAME {out['status_name_s'] * 1e3:.1f} ms, --json "
        f"{out['status_json_s']:.3f} s, table {out['status_table_s']:.3f} s")
    return out


def reload_figures(d, daemon):
    sock_runs, hup_runs = [], []
    for _ in range(3):
        s, reply = control(d / "control.sock", {"cmd": "reload-config"})
        if not reply.get("ok"):
            raise Fail(f"reload-config: {reply}")
        sock_runs.append(s)
    for _ in range(3):
        t0 = time.time()
        before = len(log_times(daemon.log_path, "config reloaded", since=t0))
        os.kill(daemon.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while True:
            done = log_times(daemon.log_path, "config reloaded", since=t0)
            if len(done) > before:
                hup_runs.append(done[-1] - t0)
                break
            if time.monotonic() > deadline:
                raise Fail("SIGHUP: no `config reloaded` within 60 s")
            time.sleep(0.005)
    log(f"  reload-config {statistics.median(sock_runs):.3f} s, SIGHUP "
        f"{statistics.median(hup_runs):.3f} s")
    return {"reload_config_s": statistics.median(sock_runs), "reload_config_runs": sock_runs,
            "sighup_s": statistics.median(hup_runs), "sighup_runs": hup_runs}


def idle_figures(args, daemon, relay):
    seconds = args.idle_seconds
    cpu0, ctxt0, io0 = proc_cpu(daemon.pid), proc_ctxt(daemon.pid), proc_io(daemon.pid)
    t0 = time.time()
    perf = {}
    if perf_usable():
        out = daemon.log_path.parent / "perf-stat-idle.csv"
        tids = ",".join(sorted(os.listdir(f"/proc/{daemon.pid}/task"), key=int))
        subprocess.run(["perf", "stat", "-x,", "-o", str(out)]
                       + sum((["-e", e] for e in PERF_EVENTS), [])
                       + ["-t", tids, "--", "sleep", str(seconds)],
                       capture_output=True, text=True)
        for line in out.read_text().splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[2] in PERF_EVENTS:
                perf[parts[2]] = 0 if parts[0] == "<not counted>" else int(parts[0])
    else:
        time.sleep(seconds)
    t1 = time.time()
    daemon.check()
    cpu1, ctxt1, io1 = proc_cpu(daemon.pid), proc_ctxt(daemon.pid), proc_io(daemon.pid)
    vol, invol, exited = ctxt_delta(ctxt0, ctxt1)
    st = proc_status(daemon.pid)
    polls = [t for t in poll_times(relay, t0) if t < t1]
    epoll = sum(v for k, v in perf.items() if "epoll" in k) if perf else None
    res = {"seconds": seconds, "rss_kib": int(st["VmRSS"].split()[0]),
           "threads": int(st["Threads"]), "cpu_s": cpu1 - cpu0,
           "voluntary_ctxt_switches": vol, "nonvoluntary_ctxt_switches": invol,
           "threads_exited": exited, "perf": perf, "epoll_waits": epoll,
           "io": io_delta(io0, io1), "ari_polls": len(polls),
           "ari_polls_max_per_second": per_second_max(polls)}
    log(f"  idle {seconds} s: RSS {res['rss_kib'] / 1024:.1f} MiB, CPU {res['cpu_s']:.2f} s, "
        f"epoll waits {epoll}, {len(polls)} ARI polls (max {res['ari_polls_max_per_second']}/s)"
        f", wrote {res['io']['write_bytes']} B")
    return res


def forced_one(cli, daemon, n):
    """Bytes written for one forced renewal: from before `renew --force NAME` until
    its state change is saved (SAVE_DELAY, 1 s). A first forced renewal of another
    certificate before it registers the ACME account with this fresh Pebble (and
    writes it), which is not a renewal's cost."""
    warm = names_for(n)[n // 3 + 1]
    r = subprocess.run(cli + ["renew", "--force", warm], capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        raise Fail(f"renew --force {warm}: exit {r.returncode}: {r.stdout}{r.stderr}")
    time.sleep(3)
    name = names_for(n)[n // 3]
    io0, t0 = proc_io(daemon.pid), time.perf_counter()
    r = subprocess.run(cli + ["renew", "--force", name], capture_output=True, text=True,
                       timeout=300)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise Fail(f"renew --force {name}: exit {r.returncode}: {r.stdout}{r.stderr}")
    time.sleep(3)  # the state save comes within a second
    io1 = proc_io(daemon.pid)
    delta = io_delta(io0, io1)
    log(f"  forced renewal of one: {wall:.2f} s, wrote {delta['write_bytes']} B "
        f"(wchar {delta['wchar']})")
    return {"wall_s": wall, "io": delta, "seconds": time.perf_counter() - t0}


def renewed(live, names, forced):
    """Certificates renewed by the mass renewal: at version 2, or 3 for `forced`."""
    return (sum(1 for nm in names if live_version(live, nm) >= 2) - len(forced)
            + sum(1 for nm in forced if live_version(live, nm) >= 3))


def mass_bytes(args, daemon, live, n, pb):
    """SIGUSR1; bytes written per renewal, over the whole mass renewal or its first
    --scale-mass-seconds (then the daemon is stopped mid-way, which is safe). A
    Pebble that deadlocks ends the window where the renewals stopped."""
    names = names_for(n)
    forced = names[n // 3:n // 3 + 2]  # renewed by forced_one already: they must reach 3
    settle([daemon.pid], quiet=1.0, timeout=60)
    io0, cpu0, t0 = proc_io(daemon.pid), proc_cpu(daemon.pid), time.time()
    os.kill(daemon.pid, signal.SIGUSR1)
    limit = args.scale_mass_seconds
    done, wedged = 0, False
    io1, last_progress = io0, time.monotonic()
    while True:
        time.sleep(1 if n <= 10000 else 5)
        daemon.check()
        now_done = renewed(live, names, forced)
        if now_done > done:
            done, io1, last_progress = now_done, proc_io(daemon.pid), time.monotonic()
        if done >= n or time.time() - t0 > limit:
            break
        if time.monotonic() - last_progress > 15 and pb.stuck():
            log(f"  mass renewal: Pebble deadlocked after {done} renewals; counting those")
            wedged = True
            break
    wall = time.time() - t0
    if not wedged:
        time.sleep(1.5)  # the last state save
        io1 = proc_io(daemon.pid)
        done = renewed(live, names, forced)
    cpu1 = proc_cpu(daemon.pid)
    delta = io_delta(io0, io1)
    per = delta["write_bytes"] / done if done else None
    log(f"  mass renewal: {done}/{n} renewed in {wall:.1f} s, {fmt(per, 0)} B written per "
        "renewal")
    stop_process(daemon.proc, timeout=60)
    return {"renewed": done, "complete": done >= n, "pebble_deadlocked": wedged,
            "wall_s": wall, "io": delta,
            "write_bytes_per_renewal": per, "cpu_s": cpu1 - cpu0,
            "certs_per_s": done / wall if wall else None}
