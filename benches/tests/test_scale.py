"""Part f (scale) offline: its report (the table of every figure against N, the
targets, one plot per figure), merging its results by N, the cache of issued
sets (key, private copies that share the archive but not what renewd rewrites)
and the options that run one size on its own."""

import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

BENCHES = Path(__file__).resolve().parents[1]
REPO = BENCHES.parent
if str(BENCHES) not in sys.path:
    sys.path.insert(0, str(BENCHES))

from renewd_bench import cache, report, report_scale  # noqa: E402

RUN = BENCHES / "run"
SVG = "{http://www.w3.org/2000/svg}"


def scale_result(n, **over):
    r = {
        "n": n, "max_concurrent": 8, "loadavg": [1.0, 1.0, 1.0],
        "set": {"issue_s": 120.0, "pebble_restarts": 2, "issue_concurrency": 8,
                "issued_at": "2026-12-01T05:00:00", "renewd_commit": "abc1234"},
        "check_config_s": 0.01 * n / 1000, "check_config_runs": [0.01, 0.01, 0.01],
        "startup_trials": [{"ready_s": 0.1, "status_answered_s": 0.12,
                            "status_reply_bytes": 400 * n, "ari_polls_first_60s": 3}],
        "ready_s": 0.05 * n / 1000, "status_answered_s": 0.06 * n / 1000,
        "rss_after_ready_kib": 10000,
        "status_name_s": 0.01, "status_json_s": 0.02 * n / 1000,
        "status_table_s": 0.03, "status_problems_s": 0.02,
        "sighup_s": 0.004 * n / 1000, "reload_config_s": 0.004,
        "idle": {"seconds": 60, "rss_kib": 20 * n // 1000 + 10000, "threads": 3,
                 "cpu_s": 0.01, "voluntary_ctxt_switches": 5, "epoll_waits": 30,
                 "perf": {"syscalls:sys_enter_futex": 4}, "io": {"write_bytes": 8192},
                 "ari_polls": 3, "ari_polls_max_per_second": 1},
        "forced_one": {"io": {"write_bytes": 40960, "wchar": 12000}, "seconds": 4.0},
        "mass": {"renewed": n, "complete": True, "wall_s": 10.0,
                 "io": {"write_bytes": 30000 * n}, "write_bytes_per_renewal": 30000.0},
        "ari": {"polls_seen": 10, "max_per_second": 2, "max_per_second_idle": 1,
                "max_in_flight": 2, "expected_per_second": n / 21600},
    }
    r.update(over)
    return r


def results(*scale, mass=()):
    return {"meta": {"started": "2026-12-01 05:00", "host": "h", "cpus": 2, "kernel": "k",
                     "loadavg_before": [0, 0, 0], "loadavg_after": [0, 0, 0],
                     "quick": False, "n": [100, 1000], "parts": ["f"], "versions": {},
                     "duration_s": 60, "json": "x.json", "concurrency": 8},
            "mass": list(mass), "scale": list(scale)}


def scale_table(md):
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| figure | target |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip()[1:-1].split("|")]
        rows[cells[0]] = cells[1:]
    return lines[start], rows


class ReportTest(unittest.TestCase):
    def test_one_column_per_n_and_one_row_per_figure(self):
        md = report.markdown(results(scale_result(10000), scale_result(1000)))
        header, rows = scale_table(md)
        self.assertIn("N = 1,000 | N = 10,000", header, "columns in order of N")
        for _, label, *_ in report_scale.FIGURES:
            self.assertIn(label, rows)
        self.assertEqual(rows["`status NAME`"], ["≤ 50 ms", "10.0 ms ✅", "10.0 ms ✅"])
        self.assertEqual(rows["startup: READY=1"][2], "0.500 s ✅")
        # 30,000 B a renewal, less 8,192 B a minute of idle writing over 10 s.
        mass = rows["bytes written per renewal: mass renewal, less the idle rate"]
        self.assertEqual(mass[1], "29.3 KiB ✅")
        # 40,960 B, less 8,192 B a minute over 4 s.
        one = rows["bytes written: one forced renewal, less the idle rate"]
        self.assertEqual(one[1], f"{(40960 - 8192 / 60 * 4) / 1024:.1f} KiB ✅")
        self.assertEqual(rows["bytes written around one forced renewal, all"][1], "40.0 KiB")

    def test_a_figure_over_its_target_is_marked(self):
        r = scale_result(100000, status_json_s=3.5,
                         idle=dict(scale_result(1)["idle"], rss_kib=200 * 1024))
        _, rows = scale_table(report.markdown(results(r)))
        self.assertEqual(rows["`status --json`, all"][1], "3.50 s ❌")
        self.assertEqual(rows["idle RSS"][1], "209.7 MB ❌")

    def test_ari_spread(self):
        even = scale_result(100000)
        burst = scale_result(100000, ari=dict(even["ari"], max_per_second_idle=400))
        # A burst at the first start (certificates never polled) is shown, not judged.
        first = scale_result(100000, ari=dict(even["ari"], max_per_second=400))
        self.assertTrue(report_scale.ari_even(first))
        _, rows = scale_table(report.markdown(results(even)))
        spread = next(k for k in rows if k.startswith("ARI polls spread"))
        self.assertIn("4.63/s mean, ✅", rows[spread][1])
        self.assertFalse(report_scale.ari_even(burst))
        self.assertTrue(report_scale.ari_even(even))

    def test_mass_renewal_ratio_against_the_ceiling(self):
        row = {"wall_s": 50.0, "cpu_s": 1.0, "peak_rss_kib": 1024, "ca_cpu_s": 1.0,
               "max_concurrent": 8, "n": 10000}
        mass = [dict(row, tool="renewd", certs_per_s=200.0),
                dict(row, tool="ceiling", certs_per_s=300.0)]
        _, rows = scale_table(report.markdown(results(scale_result(10000), mass=mass)))
        cell = rows[next(k for k in rows if k.startswith("mass renewal: renewd"))][1]
        self.assertEqual(cell, "0.67× (200.0 vs 300.0 certs/s) ❌")

    def test_each_size_gets_its_paragraph_and_the_run_line_names_it(self):
        md = report.markdown(results(scale_result(100000)))
        self.assertIn("N = 100,000: the set was issued in 2.0 min", md)
        self.assertIn("N = 100,000; took", md, "the run line names part f's N, not a and b's")

    def test_nothing_without_part_f(self):
        self.assertNotIn("Scale (f)", report.markdown(results()))

    def test_plot_has_a_panel_per_figure_with_a_point_per_n(self):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "s.svg"
            report_scale.svg(results(scale_result(1000), scale_result(10000)), path, "sub")
            root = ET.parse(path).getroot()
        texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
        for _, label, unit, *_ in report_scale.FIGURES:
            title = f"{label} ({unit})" if unit else label
            self.assertTrue(any(t.replace(" ", "") == title.replace(" ", "") for t in texts),
                            title)
        # Two points per measured figure, the renewd ÷ ceiling panel empty.
        measured = [f for f in report_scale.FIGURES
                    if f[3](scale_result(1000)) is not None]
        self.assertEqual(len(list(root.iter(f"{SVG}circle"))), 2 * len(measured))
        self.assertIn("not measured", texts)

    def test_merging_replaces_a_size_and_keeps_the_others(self):
        with tempfile.TemporaryDirectory() as d:
            a = Path(d) / "a.json"
            b = Path(d) / "b.json"
            first = results(scale_result(1000), scale_result(10000))
            second = results(scale_result(10000, status_json_s=9.0))
            a.write_text(json.dumps(first))
            b.write_text(json.dumps(second))
            merged = report.merge_results([a, b])
        by_n = {r["n"]: r for r in merged["scale"]}
        self.assertEqual(sorted(by_n), [1000, 10000])
        self.assertEqual(by_n[10000]["status_json_s"], 9.0)


class StoredResultsTest(unittest.TestCase):
    """docs/benchmarks.md and docs/benchmarks-scale.svg show part f of the
    stored results, docs/benchmarks-results.json, at every N."""

    def setUp(self):
        self.res = json.loads((REPO / "docs" / "benchmarks-results.json").read_text())

    def test_every_size_is_stored_and_shown(self):
        sizes = sorted(r["n"] for r in self.res["scale"])
        self.assertEqual(sizes, [1000, 10000, 100000])
        header, rows = scale_table((REPO / "docs" / "benchmarks.md").read_text())
        self.assertIn(" | ".join(f"N = {n:,}" for n in sizes), header)
        ready = [r["ready_s"] for r in sorted(self.res["scale"], key=lambda r: r["n"])]
        self.assertEqual(rows["startup: READY=1"][1:],
                         [f"{v:,.3f} s {'✅' if v <= 2 else '❌'}" for v in ready])

    def test_docs_plot_is_the_stored_results(self):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "s.svg"
            m = self.res["meta"]
            report_scale.svg(self.res, path,
                             f"{m['started']}, {m['cpus']} CPUs, Pebble 2.10 on loopback")
            self.assertEqual(path.read_text(),
                             (REPO / "docs" / report_scale.SCALE_SVG).read_text())


class CacheTest(unittest.TestCase):
    def test_key_names_n_and_store_format(self):
        self.assertEqual(cache.key(100000), f"issued-n100000-store{cache.STORE_FORMAT}")

    def test_a_private_copy_shares_the_archive_and_nothing_renewd_rewrites(self):
        with tempfile.TemporaryDirectory() as d:
            args = SimpleNamespace(cache=str(Path(d) / "cache"))
            src = Path(args.cache) / cache.key(2) / "state"
            (src / "archive" / "a" / "1").mkdir(parents=True)
            (src / "archive" / "a" / "1" / "cert.pem").write_text("cert")
            (src / "live").mkdir()
            os.symlink("../archive/a/1", src / "live" / "a")
            (src / "state.json").write_text("{}")
            (src / "state.journal").write_text("")
            (src / ".lock").write_text("")
            (src.parent / "meta.json").write_text('{"n": 2}')
            self.assertEqual(cache.cached(args, 2), {"n": 2})
            self.assertIsNone(cache.cached(args, 3))
            state = cache.materialize(args, 2, Path(d) / "work")
            cert = state / "archive" / "a" / "1" / "cert.pem"
            self.assertEqual(os.stat(cert).st_ino,
                             os.stat(src / "archive" / "a" / "1" / "cert.pem").st_ino)
            for name in ("state.json", "state.journal"):
                self.assertNotEqual(os.stat(state / name).st_ino, os.stat(src / name).st_ino)
            self.assertEqual(os.readlink(state / "live" / "a"), "../archive/a/1")
            self.assertEqual((state / "live" / "a" / "cert.pem").read_text(), "cert")
            self.assertFalse((state / ".lock").exists())


class OptionsTest(unittest.TestCase):
    def test_help_lists_part_f_options(self):
        out = subprocess.run([str(RUN), "--help"], capture_output=True, text=True).stdout
        for opt in ("--scale-n", "--cache", "--issue-only", "--scale-mass-seconds",
                    "--issue-restart-every", "--scale-concurrency"):
            self.assertIn(opt, out)


if __name__ == "__main__":
    unittest.main()
