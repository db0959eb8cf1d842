"""Part e, SIGUSR1 -> first newOrder at the CA: a daemon with --latency-n issued
certificates behind a relay that timestamps requests (relay.py) gets SIGUSR1 in
each of the --latency-trials (cold, warm, idle; LATENCY_TRIALS says what each
is); measured is the time from the signal to the first newOrder reaching the
relay, to the first request of any kind and to renewd's `order started` log line."""

import os
import signal
import statistics
import time

from .common import fmt, log
from .processes import settle
from .relay import NGINX, NginxRelay, Relay
from .renewd import log_times, renewd_issue_all, wait_versions


LATENCY_TRIALS = {
    "cold": "first SIGUSR1 after the daemon started: ACME account not loaded yet, "
            "no connection to the CA",
    "warm": "right after the previous mass renewal: account loaded, connection open",
    "idle": "after {idle} s without traffic: account loaded, pooled connection closed "
            "(hyper drops idle connections after 90 s), as in a daemon idle for hours",
}


def bench_latency(args, pb):
    if NGINX and not args.python_relay:
        relay = NginxRelay(pb, args.work / pb.tag).start()
    else:
        relay = Relay(pb).start()
    try:
        return _bench_latency(args, pb, relay)
    finally:
        relay.stop()


def _bench_latency(args, pb, relay):
    n = args.latency_n
    d = args.work / pb.tag
    daemon, live, names, issue_s, _ = renewd_issue_all(args, pb, d, n, args.latency_concurrency,
                                                      dir_url=relay.dir_url)
    trials = []
    for i, kind in enumerate(args.latency_trials):
        settle([daemon.pid, pb.pid], quiet=1.5)
        if kind == "idle":
            log(f"  latency: waiting {args.latency_idle} s for idle connections to close")
            time.sleep(args.latency_idle)
        t0 = time.time()
        os.kill(daemon.pid, signal.SIGUSR1)
        wait_versions(live, names, i + 2, daemon, timeout=300 + n * 2, pebble=pb)
        time.sleep(0.2)  # nginx logs a request when it ends
        reqs = [r for r in relay.requests if r[0] >= t0]
        t_order = relay.first_after(t0, "POST", "/order-plz")
        first = reqs[0] if reqs else None
        logged = next(iter(log_times(daemon.log_path, "order started", since=t0)), None)
        trials.append({
            "kind": kind,
            "first_new_order_ms": (t_order - t0) * 1e3 if t_order else None,
            "first_request_ms": (first[0] - t0) * 1e3 if first else None,
            "first_request": f"{first[1]} {first[2]}" if first else None,
            "log_order_started_ms": (logged - t0) * 1e3 if logged else None,
        })
        log(f"  latency trial {i + 1} ({kind}): first newOrder at the CA after "
            f"{fmt(trials[-1]['first_new_order_ms'])} ms")
    daemon.stop()
    relay.dump(d / "relay-requests.log")
    vals = [t["first_new_order_ms"] for t in trials if t["first_new_order_ms"] is not None]
    logv = [t["log_order_started_ms"] for t in trials if t["log_order_started_ms"] is not None]
    return {"n": n, "max_concurrent": args.latency_concurrency,
            "relay": "nginx (HTTP/2)" if isinstance(relay, NginxRelay)
            else "python (HTTP/1.1)", "idle_s": args.latency_idle, "trials": trials,
            "first_new_order_ms_median": statistics.median(vals) if vals else None,
            "first_new_order_ms_max": max(vals) if vals else None,
            "log_order_started_ms_median": statistics.median(logv) if logv else None}
