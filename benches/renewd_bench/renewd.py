"""renewd, the client under test: building it as it ships (Cargo profile dist),
writing its configuration for N certificates, running `renewd run` as a Daemon,
watching live/<name> symlinks reach an archive version, reading timestamps from
its log, and issuing the certificates a measurement starts from
(renewd_issue_all)."""

import datetime as dt
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .common import REPO, Fail, PebbleStuck, log
from .processes import CLEANUP, settle, stop_process


def build_renewd():
    """The binary that ships: profile dist (full LTO, one codegen unit), not release."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    log(f"building renewd (cargo build --profile dist, target dir {target})")
    subprocess.run(["cargo", "build", "--profile", "dist", "--locked"], cwd=REPO, check=True)
    return target / "dist" / "renewd"


def names_for(n):
    return [f"c{i:05d}.bench.example.com" for i in range(1, n + 1)]


def write_renewd_config(path, state_dir, sock, dir_url, ca_file, http01_port, names,
                        max_concurrent):
    lines = [
        "# written by benches/run",
        "[daemon]",
        f'state_dir = "{state_dir}"',
        f'control_socket = "{sock}"',
        f"max_concurrent = {max_concurrent}",
        "# check_interval, jitter, renew_before: defaults (6h, 1h, 30d)",
        "",
        "[ca.pebble]",
        f'directory = "{dir_url}"',
        f'trust = "{ca_file}"',
        'contact = ["mailto:bench@example.com"]',
        "",
        "[solver.web]",
        'type = "http-01"',
        f'listen = "127.0.0.1:{http01_port}"',
        "",
    ]
    for name in names:
        lines += ["[[certificate]]", f'name = "{name}"', f'domains = ["{name}"]', ""]
    Path(path).write_text("\n".join(lines))


class Daemon:
    """`renewd run` in its own session, logging at info to a file."""

    def __init__(self, renewd, config, log_path, extra_env=None):
        env = dict(os.environ, RENEWD_LOG=os.environ.get("RENEWD_BENCH_LOG", "info"))
        for k in ("RENEWD_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM"):
            env.pop(k, None)
        env.update(extra_env or {})
        self.log_path = Path(log_path)
        self.log = open(self.log_path, "ab")
        self.t_spawn = time.time()
        self.proc = CLEANUP.add(subprocess.Popen(
            [str(renewd), "--config", str(config), "run"], env=env,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True))
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def check(self):
        if not self.alive():
            raise Fail(f"renewd exited with {self.proc.returncode}; log tail:\n" + self.tail())

    def tail(self, lines=20):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        stop_process(self.proc, timeout=30)
        self.log.close()
        return self.proc.returncode


def live_version(live, name):
    try:
        return int(os.readlink(live / name).rstrip("/").rsplit("/", 1)[1])
    except (OSError, ValueError, IndexError):
        return 0


def wait_versions(live, names, version, daemon, timeout, interval=0.05, pebble=None):
    """Waits until every live/<name> points at archive version >= `version`.
    Returns the time.time() at which that was observed. Raises PebbleStuck when
    nothing progresses for 20 s and Pebble's store is wedged."""
    pending = set(names)
    deadline = time.monotonic() + timeout
    last_report = last_progress = time.monotonic()
    while pending:
        before = len(pending)
        pending = {n for n in pending if live_version(live, n) < version}
        if not pending:
            break
        daemon.check()
        if len(pending) < before:
            last_progress = time.monotonic()
        elif pebble and time.monotonic() - last_progress > 20:
            if pebble.stuck():
                raise PebbleStuck(f"{len(pending)} of {len(names)} certificates outstanding")
            last_progress = time.monotonic()
        if time.monotonic() > deadline:
            raise Fail(f"{len(pending)} of {len(names)} certificates not at version "
                       f"{version} after {timeout}s; log tail:\n{daemon.tail()}")
        if time.monotonic() - last_report > 15:
            log(f"  ... {len(names) - len(pending)}/{len(names)} at version {version}")
            last_report = time.monotonic()
        time.sleep(interval)
    return time.time()


def last_link_mtime(live, names):
    """When the last live/<name> symlink was created (rename(2) keeps the link's mtime)."""
    return max(os.lstat(live / n).st_mtime_ns for n in names) / 1e9


LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\s")


def log_times(path, needle, since=0.0):
    """time.time() values of log lines containing `needle`, at or after `since`."""
    out = []
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if needle not in line:
            continue
        m = LOG_TS.match(line)
        if not m:
            continue
        ts = m.group(1)
        if "." in ts:  # fromisoformat wants at most 6 fractional digits
            head, frac = ts[:-1].split(".")
            ts = f"{head}.{frac[:6]:0<6}+00:00"
        else:
            ts = ts[:-1] + "+00:00"
        t = dt.datetime.fromisoformat(ts).timestamp()
        if t >= since:
            out.append(t)
    return out


def renewd_issue_all(args, pb, d, n, max_concurrent, dir_url=None, resumable=False,
                     issue_concurrency=None):
    """Config + daemon for n certificates, all issued; returns (daemon, live dir, names,
    issue seconds, config). The certificates are issued with `issue_concurrency`
    (default --issue-concurrency) orders in flight; then the daemon is restarted with
    `max_concurrent`. With `resumable`, a Pebble deadlock restarts Pebble instead of
    failing."""
    d.mkdir(parents=True, exist_ok=True)
    names = names_for(n)
    state = d / "state"
    cfg = d / "renewd.toml"
    issue_concurrency = issue_concurrency or args.issue_concurrency

    def config(concurrency):
        write_renewd_config(cfg, state, d / "control.sock", dir_url or pb.dir_url, pb.ca,
                            pb.http01_port, names, concurrency)

    config(issue_concurrency)
    daemon = Daemon(args.renewd, cfg, d / "renewd-issue.log")
    t0 = time.time()
    while True:
        try:
            t_done = wait_versions(state / "live", names, 1, daemon, timeout=600 + n * 0.5,
                                   interval=0.2, pebble=pb)
            break
        except PebbleStuck:
            if not resumable:
                daemon.stop()
                raise
            # Keep what was issued; restart Pebble on the same ports (a new CA, so
            # renewd registers a new account) and let the daemon issue the rest.
            pb.restarts += 1
            log(f"  Pebble deadlocked while issuing; restarting it (restart {pb.restarts})")
            daemon.stop()
            pb.down()
            pb.up()
            shutil.rmtree(state / "accounts", ignore_errors=True)
            daemon = Daemon(args.renewd, cfg, d / "renewd-issue.log")
    issue_s = t_done - t0
    # Once the daemon is quiet (ARI polls after issuance done), restart it with the
    # configuration under test: a daemon that has been running idle.
    settle([daemon.pid, pb.pid])
    daemon.stop()
    config(max_concurrent)
    daemon = Daemon(args.renewd, cfg, d / "renewd.log")
    return daemon, state / "live", names, issue_s, cfg
