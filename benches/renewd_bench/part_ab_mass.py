"""Parts a and b, mass forced renewal of N certificates: each client first gets
its N certificates (untimed), then renews all of them, timed. Part a: renewd
(SIGUSR1 to a settled daemon), certbot (`certbot renew --force-renewal`) and lego
(one `lego renew` per certificate); part b: the ceiling client, and renewd with
--renewd-hi. repeated() takes a measurement K times and keeps the median run."""

import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import time

from .clients import certbot_common, ensure_certbot, lego_base, read_line
from .common import Fail, log
from .pebble import setup_failure
from .processes import (CLEANUP, free_ports, loadavg, proc_cpu, proc_kib, proc_status,
                        reset_peak_rss, run_timed, settle, stop_process)
from .renewd import last_link_mtime, log_times, names_for, renewd_issue_all, wait_versions


def repeated(times, measure):
    """Takes a mass measurement `times` times (measure(tag) with a distinct tag);
    the median run by certs/s, with every run's certs/s under "samples"."""
    runs = []
    for i in range(times):
        r = measure("" if i == 0 else f"-run{i + 1}")
        if r:
            r["loadavg"] = loadavg()
            runs.append(r)
    if not runs:
        return None
    runs.sort(key=lambda r: r["certs_per_s"])
    median = runs[(len(runs) - 1) // 2]
    if times > 1:
        median["samples"] = [r["certs_per_s"] for r in runs]
    return median


# renewd (parts a and b)


def renewd_mass(args, pb, n, max_concurrent, label):
    """Part a (and b): issue n, let the daemon settle, SIGUSR1, time until all are version 2."""
    d = args.work / pb.tag
    daemon, live, names, issue_s, _ = renewd_issue_all(args, pb, d, n, max_concurrent)
    log(f"  {label}: {n} issued in {issue_s:.1f}s (max_concurrent {args.issue_concurrency}); "
        "settling")
    time.sleep(0.5)
    settle([daemon.pid, pb.pid])
    rss_before = proc_kib(daemon.pid, "VmRSS")
    hwm_start = proc_kib(daemon.pid, "VmHWM")
    reset = reset_peak_rss(daemon.pid)
    cpu0, pcpu0 = proc_cpu(daemon.pid), pb.cpu()
    t0 = time.time()
    os.kill(daemon.pid, signal.SIGUSR1)
    # The poll interval does not limit the precision: the end time is the last
    # symlink's mtime. It only keeps this script's own CPU use low.
    observed = wait_versions(live, names, 2, daemon, timeout=300 + n * 2, pebble=pb,
                             interval=0.05 if n < 500 else 0.1)
    wall = last_link_mtime(live, names) - t0
    cpu1, pcpu1 = proc_cpu(daemon.pid), pb.cpu()
    st = proc_status(daemon.pid)
    first_order = next(iter(log_times(daemon.log_path, "order started", since=t0)), None)
    daemon.stop()
    failed = len(log_times(daemon.log_path, "issuance failed"))
    return {
        "tool": label,
        "n": n,
        "max_concurrent": max_concurrent,
        "wall_s": wall,
        "wall_observed_s": observed - t0,
        "certs_per_s": n / wall,
        "cpu_s": cpu1 - cpu0,
        "peak_rss_kib": int(st["VmHWM"].split()[0]) if reset else hwm_start,
        "peak_rss_since_start_kib": max(hwm_start, int(st["VmHWM"].split()[0])),
        "rss_before_kib": rss_before,
        "rss_after_kib": int(st["VmRSS"].split()[0]),
        "threads": int(st["Threads"]),
        "ca_cpu_s": pcpu1 - pcpu0,
        "initial_issue_s": issue_s,
        "first_order_after_signal_ms": (first_order - t0) * 1e3 if first_order else None,
        "issuance_failures_logged": failed,
        "ok": n,
    }


# The ceiling client (part b)


def ceiling_mass(args, pb, n, concurrency):
    """Part b: the minimal client renews n certificates it has just got, with
    `concurrency` in flight; like renewd in part a, only the renewals are measured."""
    d = args.work / pb.tag
    d.mkdir(parents=True)
    log_file = open(d / "out.log", "ab")
    p = CLEANUP.add(subprocess.Popen(
        [str(args.ceiling_bin), pb.dir_url, str(pb.ca), str(n), str(concurrency),
         str(args.ceiling_poll_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
        start_new_session=True, text=True))
    try:
        issued = json.loads(read_line(p, pb, timeout=600 + n))
        log(f"  ceiling: {issued['issued']} issued in {issued['issue_wall_s']:.1f} s (setup)")
        settle([pb.pid, p.pid])
        reset_peak_rss(p.pid)
        cpu0, pcpu0 = proc_cpu(p.pid), pb.cpu()
        p.stdin.write("go\n")
        p.stdin.flush()
        r = json.loads(read_line(p, pb, timeout=600 + n))
        cpu1, pcpu1 = proc_cpu(p.pid), pb.cpu()
        maxrss = proc_kib(p.pid, "VmHWM")
        p.stdin.close()
        p.wait(timeout=30)
    finally:
        stop_process(p)
        log_file.close()
    if r["failed"]:
        log(f"  warning: ceiling client: {r['failed']} orders failed; see {d}/out.log")
    return {
        "tool": "ceiling", "n": n, "max_concurrent": concurrency,
        "poll_ms": args.ceiling_poll_ms, "wall_s": r["wall_s"],
        "certs_per_s": r["certs_per_s"], "cpu_s": cpu1 - cpu0, "peak_rss_kib": maxrss,
        "ca_cpu_s": pcpu1 - pcpu0, "ok": r["ok"],
        "initial_issue_s": issued["issue_wall_s"],
    }


# certbot (part a)


def certbot_mass(args, pb, n):
    certbot = ensure_certbot(args)
    d = args.work / pb.tag
    env = dict(os.environ, REQUESTS_CA_BUNDLE=str(pb.ca))
    names = names_for(n)
    workers = max(1, min(args.setup_workers, n))
    shard_dirs = [tuple(d / f"shard{k}" / x for x in ("config", "work", "logs"))
                  for k in range(workers)]
    ports = [pb.http01_port] + free_ports(workers - 1)

    def certonly(k, name):
        rc, wall, _, _ = run_timed(
            [str(certbot), "certonly", "--standalone", "-d", name]
            + certbot_common(shard_dirs[k], pb, ports[k]),
            env=env, log_path=d / f"setup{k}.log", timeout=300,
            pebble=pb)
        if rc != 0:
            raise setup_failure(pb, f"certbot certonly {name} (exit {rc})", d / f"setup{k}.log")

    # Setup: the first certificate registers the account; the others are issued by
    # parallel workers in their own config dirs (certbot locks its config dir), which
    # then get merged into one, as if issued one by one.
    t0 = time.perf_counter()
    d.mkdir(parents=True)
    certonly(0, names[0])
    for k in range(1, workers):
        shutil.copytree(shard_dirs[0][0] / "accounts", shard_dirs[k][0] / "accounts")
    shares = [names[1:][k::workers] for k in range(workers)]
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        futs = [ex.submit(lambda k=k: [certonly(k, nm) for nm in shares[k]])
                for k in range(workers)]
        for f in futs:
            f.result()
    main = tuple(d / "main" / x for x in ("config", "work", "logs"))
    main[0].parent.mkdir()
    os.rename(shard_dirs[0][0], main[0])  # keeps live/ symlinks as they are
    for k in range(1, workers):
        conf = shard_dirs[k][0]
        for sub in ("archive", "live", "renewal"):
            for entry in (conf / sub).iterdir():
                if entry.name != "README":
                    os.rename(entry, main[0] / sub / entry.name)
    moved = [(re.compile(re.escape(str(shard_dirs[k][i])) + r"(?=/|$)", re.M), str(main[i]))
             for k in range(workers) for i in range(3)]
    for conf_file in (main[0] / "renewal").iterdir():
        text = conf_file.read_text()
        for pattern, repl in moved:
            text = pattern.sub(repl, text)
        conf_file.write_text(text)
    broken = [nm for nm in names if not (main[0] / "live" / nm / "cert.pem").is_symlink()]
    if broken:
        raise Fail(f"certbot setup: {len(broken)} lineages without live symlinks")
    setup_s = time.perf_counter() - t0
    if len(list((main[0] / "renewal").iterdir())) != n:
        raise Fail(f"certbot setup: expected {n} renewal confs")
    log(f"  certbot: {n} issued in {setup_s:.1f}s ({workers} workers); renewing")

    settle([pb.pid])
    pcpu0 = pb.cpu()
    rc, wall, cpu, maxrss = run_timed(
        [str(certbot), "renew", "--force-renewal", "--no-random-sleep-on-renew"]
        + certbot_common(main, pb, pb.http01_port),
        env=env, log_path=d / "renew.log")
    pcpu1 = pb.cpu()
    ok = sum(1 for nm in names
             if os.path.realpath(main[0] / "live" / nm / "cert.pem").endswith("/cert2.pem"))
    if ok != n:
        log(f"  warning: certbot renewed {ok}/{n} (exit {rc}); see {d}/renew.log")
    return {
        "tool": "certbot", "n": n, "wall_s": wall, "certs_per_s": ok / wall if ok else 0.0,
        "cpu_s": cpu, "peak_rss_kib": maxrss, "ca_cpu_s": pcpu1 - pcpu0,
        "initial_issue_s": setup_s, "exit_code": rc, "ok": ok,
    }


# lego (part a)


def lego_mass(args, pb, n):
    d = args.work / pb.tag
    d.mkdir(parents=True)
    path = d / "lego"
    env = dict(os.environ, LEGO_CA_CERTIFICATES=str(pb.ca))
    names = names_for(n)
    workers = max(1, min(args.setup_workers, n))
    ports = [pb.http01_port] + free_ports(workers - 1)

    def issue(k, name):
        rc, _, _, _ = run_timed(lego_base(args, pb, path, ports[k], name) + ["run"],
                                env=env, log_path=d / f"setup{k}.log", timeout=300,
            pebble=pb)
        if rc != 0:
            raise setup_failure(pb, f"lego run {name} (exit {rc})", d / f"setup{k}.log")

    # Setup: first certificate registers the account, the rest in parallel (lego keeps
    # one file set per certificate, so parallel runs sharing --path do not collide).
    t0 = time.perf_counter()
    issue(0, names[0])
    shares = [names[1:][k::workers] for k in range(workers)]
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        for f in [ex.submit(lambda k=k: [issue(k, nm) for nm in shares[k]])
                  for k in range(workers)]:
            f.result()
    setup_s = time.perf_counter() - t0
    log(f"  lego: {n} issued in {setup_s:.1f}s ({workers} workers); renewing one by one")

    # Timed: what a timer running lego once per certificate does, forced to renew:
    # --days 999 (every certificate is due), --ari-disable (lego's fastest path: no
    # renewalInfo request first), --no-random-sleep.
    settle([pb.pid])
    pcpu0 = pb.cpu()
    ok, cpu, maxrss, codes = 0, 0.0, 0, {}
    t0 = time.perf_counter()
    for name in names:
        rc, _, c, rss = run_timed(
            lego_base(args, pb, path, pb.http01_port, name)
            + ["renew", "--days", "999", "--ari-disable", "--no-random-sleep"],
            env=env, log_path=d / "renew.log")
        cpu += c
        maxrss = max(maxrss, rss)
        codes[rc] = codes.get(rc, 0) + 1
        ok += rc == 0
    wall = time.perf_counter() - t0
    pcpu1 = pb.cpu()
    if ok != n:
        log(f"  warning: lego renewed {ok}/{n}; see {d}/renew.log")
    return {
        "tool": "lego", "n": n, "wall_s": wall, "certs_per_s": ok / wall if ok else 0.0,
        "cpu_s": cpu, "peak_rss_kib": maxrss, "ca_cpu_s": pcpu1 - pcpu0,
        "initial_issue_s": setup_s, "ok": ok, "exit_codes": codes,
    }
