"""renewd benchmark suite: renewd vs certbot vs lego against a local Pebble.

Not part of the test suite. Documented in docs/benchmarks.md. Python standard
library only (certbot is installed into its own venv under /tmp).

    benches/run --quick                 # N=20 everywhere: a smoke run (~3-4 min)
    benches/run                         # full run (~1 h 35 min on 2 cores, see docs)
    benches/run --n 100 --parts a,b     # a subset
    benches/run --report target/bench/results-X.json --docs   # re-render only
    benches/run --report X.json,Y.json --docs   # merge: Y's measurements replace X's

Parts:
  a  mass forced renewal of N certificates: renewd (SIGUSR1), certbot
     (`certbot renew --force-renewal`), lego (one `lego renew` per certificate)
  b  the CA's ceiling: a minimal concurrent ACME client (benches/ceiling)
  c  idle daemon with --idle-n issued certificates: RSS, CPU, wake-ups over --idle-seconds
  d  startup to READY with --startup-n issued certificates
  e  SIGUSR1 -> first newOrder reaching the CA (timestamped by nginx, or a
     built-in TLS relay, in front of Pebble)
  f  scale (only when asked: --parts f): one daemon with each N of --scale-n
     (default 1000,10000,100000) issued certificates, cached between runs:
     startup, status, reload, idle, ARI poll spread, bytes written per renewal

Every measurement gets a fresh Pebble 2.10 (tests/tools/pebble up, with its own
ports and state dir, PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1
PEBBLE_AUTHZREUSE=0 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_PROFILES=default); renewd is
built with `cargo build --profile dist`, as it ships. A Pebble whose store
deadlocks is detected and the measurement repeated on a fresh one. Everything
started is stopped on exit, Ctrl-C or SIGTERM. Raw results: JSON (plus markdown
and SVG) under --out (default target/bench/); a full run also updates
docs/benchmarks.md and docs/benchmarks.svg.
"""

# The modules, by concern:
#   cli.py             options, the --report mode, main(): the order of the parts
#   common.py          repository path, log(), Fail / PebbleStuck, fmt()
#   processes.py       cleanup of everything started, signals, run_timed, /proc readings
#   pebble.py          a fresh Pebble per measurement, deadlock detection and retries
#   relay.py           the timestamping relay in front of Pebble (nginx or built-in)
#   renewd.py          building and running renewd, issuing the set-up certificates
#   clients.py         certbot, lego and the ceiling client (benches/ceiling); versions
#   part_ab_mass.py    parts a and b: mass forced renewal, the CA's ceiling
#   part_c_idle.py     part c: the idle daemon
#   part_d_startup.py  part d: startup to READY
#   part_e_latency.py  part e: SIGUSR1 -> first newOrder at the CA
#   part_f_scale.py    part f: one daemon with N certificates, every figure
#   cache.py           the issued sets of part f, kept between runs
#   report.py          markdown, SVG, merging results, docs/benchmarks.md
#   report_scale.py    part f's table and its plot of each figure against N
