"""The other clients the suite drives (renewd has renewd.py): certbot, installed
with pip into its own venv; lego, found on PATH or given with --lego; the
minimal ACME client of part b (benches/ceiling, its own Cargo package), built
here and talked to over its stdin/stdout; and the versions of every client, for
the results."""

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from .common import REPO, Fail, PebbleStuck, log

# certbot


def ensure_certbot(args):
    venv = Path(args.certbot_venv)
    certbot = venv / "bin" / "certbot"
    if not certbot.exists():
        log(f"installing certbot into {venv} (pip)")
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "certbot"], check=True)
    return certbot


def certbot_common(dirs, pb, port):
    conf, work, logs = dirs
    return ["--non-interactive", "--agree-tos", "--register-unsafely-without-email",
            "--server", pb.dir_url, "--config-dir", str(conf), "--work-dir", str(work),
            "--logs-dir", str(logs), "--max-log-backups", "0",
            "--http-01-address", "127.0.0.1", "--http-01-port", str(port)]


# lego


def lego_base(args, pb, path, port, name):
    return [args.lego, "--server", pb.dir_url, "--http", "--http.port", f"127.0.0.1:{port}",
            "--email", "bench@example.com", "--accept-tos", "-d", name, "--path", str(path)]


# The ceiling client (benches/ceiling)


def build_ceiling(args):
    """benches/ceiling: a minimal concurrent ACME client (its own Cargo package)."""
    if args.ceiling_bin:
        return Path(args.ceiling_bin)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    log(f"building benches/ceiling (cargo build --release, target dir {target})")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path",
                    str(REPO / "benches" / "ceiling" / "Cargo.toml")],
                   env=dict(os.environ, CARGO_TARGET_DIR=str(target)), check=True)
    return target / "release" / "acme-ceiling"


def read_line(p, pebble, timeout):
    """The next stdout line of p; PebbleStuck if Pebble wedges meanwhile."""
    deadline = time.monotonic() + timeout
    next_probe = time.monotonic() + 20
    while True:
        ready, _, _ = select.select([p.stdout], [], [], 1.0)
        if ready:
            line = p.stdout.readline()
            if not line:
                raise Fail(f"acme-ceiling exited ({p.poll()}); see its out.log")
            return line
        if time.monotonic() > deadline:
            raise Fail(f"acme-ceiling: no answer within {timeout}s")
        if time.monotonic() > next_probe:
            if pebble.stuck():
                raise PebbleStuck("acme-ceiling running")
            next_probe = time.monotonic() + 10


# Versions, for the results


def versions(args):
    v = {}
    for key, argv in (("renewd", [str(args.renewd), "--version"]),
                      ("lego", [args.lego, "--version"]),
                      ("certbot", [str(Path(args.certbot_venv) / "bin" / "certbot"),
                                   "--version"])):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            v[key] = (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            v[key] = None
    if v.get("certbot"):
        v["certbot"] = v["certbot"].replace("certbot ", "")
    return v
