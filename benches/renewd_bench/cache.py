"""Issued sets, cached: N certificates issued by renewd against Pebble (the slow
part of every measurement at N = 100,000), kept under --cache (default
target/bench/cache) as `issued-n<N>-store<STORE_FORMAT>/`: renewd's state
directory and meta.json (when, how long, with which renewd). A measurement that
does not depend on the CA having issued the set itself (startup, status,
check-config, SIGHUP, idle, bytes written) works on a copy (materialize): the
archive hard-linked (versions are immutable, renewd only ever adds or removes
whole files there), everything else copied. Issuing gets a fresh Pebble every
--issue-restart-every certificates: Pebble's newOrder scans every authorization
it holds, so one Pebble issuing 100,000 slows down quadratically."""

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from .common import REPO, Fail, log
from .renewd import Daemon, names_for, write_renewd_config

# Bump when renewd's state directory layout changes in a way an older set cannot
# be read with (docs/reference/files.md): the cache key includes it.
STORE_FORMAT = 1


def cache_root(args):
    return Path(args.cache or REPO / "target" / "bench" / "cache")


def key(n):
    return f"issued-n{n}-store{STORE_FORMAT}"


def cached(args, n):
    """meta.json of the cached set of n, or None."""
    meta = cache_root(args) / key(n) / "meta.json"
    return json.loads(meta.read_text()) if meta.exists() else None


def git_head():
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                       capture_output=True, text=True)
    return r.stdout.strip() or None


def count_live(live):
    try:
        return sum(1 for e in os.scandir(live) if not e.name.startswith("."))
    except FileNotFoundError:
        return 0


def issue_set(args, pb, n):
    """Issues n certificates with renewd into the cache (unless there already);
    returns the set's meta. `pb` is a running Pebble; it is replaced by a fresh one
    every --issue-restart-every certificates and whenever its store deadlocks."""
    meta = cached(args, n)
    if meta:
        return meta
    root = cache_root(args)
    d = root / f".tmp-{key(n)}"
    d.mkdir(parents=True, exist_ok=True)  # a partial set from an interrupted run resumes
    state = d / "state"
    cfg = d / "renewd.toml"
    names = names_for(n)

    def start():
        write_renewd_config(cfg, state, d / "control.sock", pb.dir_url, pb.ca,
                            pb.http01_port, names, args.issue_concurrency)
        return Daemon(args.renewd, cfg, d / "renewd-issue.log")

    def restart_pebble(why):
        nonlocal daemon
        pb.restarts += 1
        log(f"  issuing {n}: {why}; fresh Pebble (restart {pb.restarts})")
        daemon.stop()
        pb.down()
        pb.up()
        shutil.rmtree(state / "accounts", ignore_errors=True)
        daemon = start()

    log(f"  issuing {n} certificates into {d} (max_concurrent {args.issue_concurrency}, "
        f"fresh Pebble every {args.issue_restart_every})")
    t0 = time.monotonic()
    daemon = start()
    done = count_live(state / "live")
    at_restart, last_progress, last_report = done, time.monotonic(), time.monotonic()
    while done < n:
        time.sleep(2)
        daemon.check()
        now_done = count_live(state / "live")
        if now_done > done:
            last_progress = time.monotonic()
        done = now_done
        if time.monotonic() - last_report > 30:
            el = time.monotonic() - t0
            log(f"  ... {done}/{n} issued ({el:.0f} s)")
            last_report = time.monotonic()
        if done < n and done - at_restart >= args.issue_restart_every:
            restart_pebble(f"{done} issued")
            at_restart = done
        elif time.monotonic() - last_progress > 10 and pb.stuck():
            restart_pebble("Pebble deadlocked")
            last_progress = time.monotonic()
        if time.monotonic() - t0 > 600 + n * 0.5:
            raise Fail(f"issuing {n}: only {done} after {time.monotonic() - t0:.0f} s")
    issue_s = time.monotonic() - t0
    # Not settle(): after a fresh Pebble the daemon's ARI polls of certificates
    # from earlier ones keep failing and retrying, so it never goes quiet. It
    # writes its state when it stops.
    time.sleep(2)
    daemon.stop()
    meta = {"n": n, "store_format": STORE_FORMAT, "issued_at": dt.datetime.now().isoformat(
        timespec="seconds"), "issue_s": issue_s, "issue_concurrency": args.issue_concurrency,
        "pebble_restarts": pb.restarts, "renewd_commit": git_head(),
        "renewd_version": args.versions_renewd if hasattr(args, "versions_renewd") else None}
    (d / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    os.rename(d, root / key(n))
    log(f"  issued {n} in {issue_s:.0f} s ({n / issue_s:.0f}/s, {pb.restarts} fresh Pebbles); "
        f"cached as {root / key(n)}")
    return meta


def materialize(args, n, dest):
    """A private copy of the cached set of n under dest/state (dest must not exist):
    archive/ hard-linked, the rest (live/ symlinks, state.json, state.journal,
    accounts) copied. Returns the state directory."""
    src = cache_root(args) / key(n) / "state"
    if not src.is_dir():
        raise Fail(f"no cached set of {n} at {src}")
    state = Path(dest) / "state"
    state.mkdir(parents=True)
    t0 = time.monotonic()
    for entry in os.scandir(src):
        if entry.name == ".lock":
            continue
        flags = "-al" if entry.name == "archive" else "-a"
        subprocess.run(["cp", flags, entry.path, str(state / entry.name)], check=True)
    log(f"  copied the cached set of {n} in {time.monotonic() - t0:.1f} s")
    return state
