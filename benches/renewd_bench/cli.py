"""The command line: the options (parse_args; --help text from the package
docstring), the --report mode that re-renders earlier results (report_only), and
main(), which checks the prerequisites, builds what it measures and runs the
parts in order, saving the raw results after every measurement and writing the
markdown, SVG and (for a complete run) docs/ at the end, however it ends."""

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import __doc__ as SUITE_DOC
from .clients import build_ceiling, ensure_certbot, versions
from .common import REPO, T_START, Fail, log
from .part_ab_mass import certbot_mass, ceiling_mass, lego_mass, renewd_mass, repeated
from .part_c_idle import bench_idle
from .part_d_startup import bench_startup
from .part_e_latency import LATENCY_TRIALS, bench_latency
from .part_f_scale import bench_scale
from .cache import cached, issue_set
from .pebble import PEBBLE_TOOL, with_pebble
from .processes import CLEANUP, Interrupted, install_signal_handlers, loadavg
from .renewd import build_renewd
from .report import markdown, merge_results, svg_plot, write_docs
from . import report_scale


def parse_args():
    ap = argparse.ArgumentParser(description=SUITE_DOC,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="N=20 only, 10 s idle, 200-certificate startup, 20-certificate "
                         "latency (development; numbers are not meaningful)")
    ap.add_argument("--n", help="comma-separated N for parts a and b (default 100,1000)")
    ap.add_argument("--tools", default="renewd,certbot,lego",
                    help="tools for part a (default renewd,certbot,lego)")
    ap.add_argument("--parts", default="a,b,c,d,e",
                    help="parts to run (default a,b,c,d,e; f, scale, runs only when asked)")
    ap.add_argument("--concurrency", type=int, default=32,
                    help="renewd daemon.max_concurrent for parts a and e (default 32)")
    ap.add_argument("--ceiling-concurrency", type=int, default=32,
                    help="orders in flight for the minimal client of part b (default 32, "
                         "enough to saturate Pebble; Pebble 2.10 deadlocks more often the "
                         "more orders are in flight)")
    ap.add_argument("--renewd-hi", type=int, default=0, metavar="C",
                    help="part b also runs renewd with max_concurrent C (default: no)")
    ap.add_argument("--issue-concurrency", type=int, default=8,
                    help="renewd max_concurrent while issuing the certificates that parts "
                         "a, c and e then renew or watch (untimed; default 8, low because "
                         "Pebble 2.10 can deadlock under concurrent orders)")
    ap.add_argument("--startup-issue-concurrency", type=int, default=8,
                    help="the same for the --startup-n certificates of part d (default 8; "
                         "a deadlocked Pebble is restarted there and issuing resumes)")
    ap.add_argument("--ceiling-poll-ms", type=int, default=5,
                    help="poll interval of the minimal client of part b (default 5)")
    ap.add_argument("--ceiling-bin", help="prebuilt benches/ceiling binary")
    ap.add_argument("--repeat", type=int, default=1, metavar="K",
                    help="measure renewd and the ceiling client K times per N in parts "
                         "a and b, each on a fresh Pebble, and report the median run "
                         "(certbot and lego: once)")
    ap.add_argument("--idle-n", type=int, help="certificates for part c (default 1000)")
    ap.add_argument("--idle-seconds", type=int, help="idle window (default 60)")
    ap.add_argument("--startup-n", type=int, help="certificates for part d (default 10000)")
    ap.add_argument("--startup-trials", type=int, default=3)
    ap.add_argument("--latency-n", type=int, help="certificates for part e (default 1000)")
    ap.add_argument("--scale-n", help="comma-separated N for part f (default 1000,10000,100000; "
                                      "each runs on its own, e.g. --parts f --scale-n 100000)")
    ap.add_argument("--scale-mass-seconds", type=int, default=120,
                    help="part f: at most this long a mass renewal for its bytes written per "
                         "renewal (default 120; N = 10,000 takes about a minute)")
    ap.add_argument("--issue-only", action="store_true",
                    help="part f: issue (and cache) the sets of --scale-n that are missing, "
                         "measure nothing")
    ap.add_argument("--scale-concurrency", type=int, default=8,
                    help="part f: daemon.max_concurrent (default 8: its mass renewal of "
                         "10,000 wedges Pebble at 32 within seconds)")
    ap.add_argument("--cache", help="where issued sets are kept between runs (default "
                                    "target/bench/cache; part f issues a missing one)")
    ap.add_argument("--issue-restart-every", type=int, default=20000,
                    help="part f: a fresh Pebble every this many certificates while issuing "
                         "a set (default 20000; Pebble slows down with every one it holds)")
    ap.add_argument("--latency-trials", default="cold,warm,idle",
                    help="part e trials in order: cold, warm, idle (default cold,warm,idle)")
    ap.add_argument("--latency-concurrency", type=int, default=8,
                    help="max_concurrent of the daemon in part e (default 8: its three mass "
                         "renewals of 1,000 wedge Pebble at 16 more often than not, and the "
                         "first newOrder does not depend on it)")
    ap.add_argument("--latency-idle", type=int, default=95,
                    help="seconds without traffic before the idle trial (default 95)")
    ap.add_argument("--python-relay", action="store_true",
                    help="part e: timestamp requests with the built-in HTTP/1.1 relay even "
                         "if nginx is installed")
    ap.add_argument("--setup-workers", type=int, default=4,
                    help="parallel certbot/lego processes issuing the initial certificates "
                         "(untimed setup; default 4)")
    ap.add_argument("--renewd", help="renewd binary (default: $RENEWD_BIN, else cargo build "
                                     "--profile dist into $CARGO_TARGET_DIR or target/)")
    ap.add_argument("--lego", default=shutil.which("lego") or "/usr/local/bin/lego")
    ap.add_argument("--certbot-venv", default=os.environ.get("CERTBOT_VENV",
                                                              "/tmp/renewd-bench-venv"))
    ap.add_argument("--out", default=str(REPO / "target" / "bench"),
                    help="directory for the raw JSON results (default target/bench)")
    ap.add_argument("--docs", dest="docs", action="store_true", default=None,
                    help="write docs/benchmarks.md results + docs/benchmarks.svg "
                         "(default: yes for a full run, no with --quick)")
    ap.add_argument("--no-docs", dest="docs", action="store_false")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--note", help="a line to put above the results in the markdown")
    ap.add_argument("--report", metavar="JSON[,JSON...]",
                    help="measure nothing: write the markdown and SVG (and docs, with --docs) "
                         "from an earlier results JSON; several are merged, later runs "
                         "replacing earlier measurements of the same tool and N or part")
    ap.add_argument("--tmp", help="where to create the work directory (default $TMPDIR or "
                                  "/tmp; e.g. /dev/shm to take disk flushes out of the picture)")
    args = ap.parse_args()
    q = args.quick
    args.n = [int(x) for x in args.n.split(",")] if args.n else ([20] if q else [100, 1000])
    args.idle_n = args.idle_n or (20 if q else 1000)
    args.idle_seconds = args.idle_seconds or (10 if q else 60)
    args.startup_n = args.startup_n or (200 if q else 10000)
    args.latency_n = args.latency_n or (20 if q else 1000)
    args.scale_n = ([int(x) for x in args.scale_n.split(",")] if args.scale_n
                    else [200] if q else [1000, 10000, 100000])
    args.latency_trials = [t for t in args.latency_trials.split(",") if t]
    bad = [t for t in args.latency_trials if t not in LATENCY_TRIALS]
    if bad:
        ap.error(f"--latency-trials: unknown {bad}")
    if q:
        args.startup_trials = min(args.startup_trials, 2)
        args.latency_trials = [t for t in args.latency_trials if t != "idle"]
    args.tools = [t for t in args.tools.split(",") if t]
    args.parts = set(p for p in args.parts.split(",") if p)
    if args.docs is None:
        args.docs = not q and not args.report
    return args


def report_only(args):
    """--report FILE[,FILE...]: markdown, SVG (and docs, with --docs) from earlier raw
    results; several files are merged (see merge_results)."""
    paths = args.report.split(",")
    res = merge_results(paths)
    path = Path(paths[0])
    if len(paths) > 1:
        path = path.parent / f"{path.stem}-merged.json"
        res["meta"]["json"] = str(path)
        path.write_text(json.dumps(res, indent=2) + "\n")
    if args.note:
        res["meta"]["note"] = args.note
    md = markdown(res)
    (path.parent / f"{path.stem}.md").write_text(md + "\n")
    subtitle = (f"{res['meta']['started']}, {res['meta']['cpus']} CPUs"
                + (", quick run" if res["meta"].get("quick") else ""))
    svg_plot(res.get("mass", []), path.parent / f"{path.stem}.svg", subtitle)
    report_scale.svg(res, path.parent / f"{path.stem}-scale.svg", subtitle)
    if args.docs:
        write_docs(res, REPO / "docs")
        log("wrote docs/benchmarks.md and docs/benchmarks.svg")
    print(md)


def main():
    install_signal_handlers()
    args = parse_args()
    if args.report:
        report_only(args)
        return
    for tool in ("openssl", "curl"):
        if not shutil.which(tool):
            sys.exit(f"benches/run: needs {tool}")
    if not os.access(PEBBLE_TOOL, os.X_OK):
        sys.exit(f"benches/run: {PEBBLE_TOOL} not found or not executable")
    args.renewd = Path(args.renewd or os.environ.get("RENEWD_BIN") or build_renewd()).resolve()
    if "lego" in args.tools and not Path(args.lego).exists():
        sys.exit("benches/run: lego not found (tests/tools/install-pebble --with-lego)")
    if "certbot" in args.tools and "a" in args.parts:
        ensure_certbot(args)
    if "b" in args.parts:
        args.ceiling_bin = build_ceiling(args).resolve()
    args.work = Path(tempfile.mkdtemp(prefix="renewd-bench.", dir=args.tmp)).resolve()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = out_dir / f"results-{stamp}{'-quick' if args.quick else ''}.json"
    res = {"meta": {
        "started": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "host": platform.node(), "cpus": os.cpu_count(), "kernel": platform.release(),
        "loadavg_before": loadavg(), "quick": args.quick, "n": args.n, "tools": args.tools,
        "note": args.note,
        "parts": sorted(args.parts), "concurrency": args.concurrency, "repeat": args.repeat,
        "issue_concurrency": args.issue_concurrency, "scale_n": args.scale_n,
        "ceiling_concurrency": args.ceiling_concurrency,
        "ceiling_poll_ms": args.ceiling_poll_ms,
        "versions": versions(args), "work": str(args.work), "json": str(json_path),
        "work_fs": subprocess.run(["stat", "-f", "-c", "%T", str(args.work)],
                                  capture_output=True, text=True).stdout.strip(),
    }}
    if res["meta"]["loadavg_before"][0] > 0.5:
        log(f"warning: load average {res['meta']['loadavg_before']} — timings will be noisy")
    log(f"work dir {args.work}; renewd {args.renewd}")
    failures = []

    def save():
        res["meta"]["loadavg_after"] = loadavg()
        res["meta"]["duration_s"] = time.monotonic() - T_START
        json_path.write_text(json.dumps(res, indent=2) + "\n")

    def attempt(what, fn):
        try:
            return fn()
        except Fail as e:
            log(f"FAILED {what}: {e}")
            failures.append(f"{what}: {e}")
            return None
        except Exception as e:  # a bug here must not lose the other measurements
            import traceback
            traceback.print_exc()
            log(f"FAILED {what}: {e!r}")
            failures.append(f"{what}: {e!r}")
            return None

    interrupted = False
    try:
        res["mass"] = []
        for n in args.n:
            if "a" in args.parts:
                for tool in args.tools:
                    log(f"(a) {tool}, N={n}")
                    fn = {"renewd": lambda pb: renewd_mass(args, pb, n, args.concurrency,
                                                            "renewd"),
                          "certbot": lambda pb: certbot_mass(args, pb, n),
                          "lego": lambda pb: lego_mass(args, pb, n)}[tool]
                    times = args.repeat if tool == "renewd" else 1
                    r = repeated(times, lambda tag: attempt(
                        f"{tool} N={n}", lambda: with_pebble(args.work, f"{tool}-{n}{tag}", fn)))
                    if r:
                        res["mass"].append(r)
                        log(f"    {tool} N={n}: {r['wall_s']:.2f}s, {r['certs_per_s']:.1f} "
                            f"certs/s, CPU {r['cpu_s']:.2f}s, peak RSS "
                            f"{r['peak_rss_kib'] / 1024:.1f} MiB")
                    save()
            if "b" in args.parts:
                c = min(args.ceiling_concurrency, n)
                runs = [("ceiling", f"minimal client, {c} in flight",
                         lambda pb: ceiling_mass(args, pb, n, c))]
                if args.renewd_hi:
                    runs.append(("renewd-hi", f"renewd, max_concurrent {args.renewd_hi}",
                                 lambda pb: renewd_mass(args, pb, n, args.renewd_hi,
                                                        "renewd-hi")))
                for key, what, fn in runs:
                    log(f"(b) {what}, N={n}")
                    r = repeated(args.repeat, lambda tag: attempt(
                        f"{key} N={n}", lambda: with_pebble(args.work, f"{key}-{n}{tag}", fn)))
                    if r:
                        res["mass"].append(r)
                        log(f"    {key} N={n}: {r['wall_s']:.2f}s, {r['certs_per_s']:.1f} "
                            f"certs/s, CPU {r['cpu_s']:.2f}s")
                    save()
        if "c" in args.parts:
            log(f"(c) idle, {args.idle_n} certificates, {args.idle_seconds}s")
            res["idle"] = attempt("idle", lambda: with_pebble(
                args.work, "idle", lambda pb: bench_idle(args, pb)))
            if res["idle"]:
                i = res["idle"]
                log(f"    idle: RSS {i['rss_kib'] / 1024:.1f} MiB, CPU {i['cpu_s']:.2f}s, "
                    f"epoll waits {i['epoll_waits']}, voluntary switches "
                    f"{i['voluntary_ctxt_switches']}")
            save()
        if "d" in args.parts:
            log(f"(d) startup, {args.startup_n} certificates")
            res["startup"] = attempt("startup", lambda: with_pebble(
                args.work, "startup", lambda pb: bench_startup(args, pb)))
            save()
        if "e" in args.parts:
            log(f"(e) SIGUSR1 -> first newOrder, {args.latency_n} certificates")
            res["latency"] = attempt("latency", lambda: with_pebble(
                args.work, "latency", lambda pb: bench_latency(args, pb)))
            save()
        if "f" in args.parts:
            res["scale"] = []
            for n in args.scale_n:
                meta = cached(args, n)
                if not meta:
                    log(f"(f) issuing the set of {n} (cached for later runs)")
                    meta = attempt(f"issue N={n}", lambda: with_pebble(
                        args.work, f"issue-{n}", lambda pb: issue_set(args, pb, n),
                        attempts=1))
                if not meta or args.issue_only:
                    continue
                log(f"(f) scale, N={n}")
                r = attempt(f"scale N={n}", lambda: with_pebble(
                    args.work, f"scale-{n}", lambda pb: bench_scale(args, pb, n, meta)))
                if r:
                    r["loadavg"] = loadavg()
                    res["scale"].append(r)
                save()
    except Interrupted:
        interrupted = True
        failures.append("interrupted")
    finally:
        CLEANUP.run()
        res["failures"] = failures
        save()
        md = markdown(res)
        (out_dir / f"{json_path.stem}.md").write_text(md + "\n")
        subtitle = (f"{res['meta']['started']}, {res['meta']['cpus']} CPUs"
                    + (", quick run" if args.quick else ""))
        svg_plot(res.get("mass", []), out_dir / f"{json_path.stem}.svg", subtitle)
        report_scale.svg(res, out_dir / f"{json_path.stem}-scale.svg", subtitle)
        if args.docs and not failures:
            write_docs(res, REPO / "docs")
            log("wrote docs/benchmarks.md and docs/benchmarks.svg")
        elif args.docs:
            log("not touching docs/: some measurements failed")
        print(md)
        log(f"results: {json_path} (+ .md, .svg)")
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
        else:
            log(f"kept {args.work}")
    sys.exit(130 if interrupted else 1 if failures else 0)
