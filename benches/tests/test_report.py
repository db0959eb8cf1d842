"""The report (benches/renewd_bench/report.py) rendered from the stored results,
docs/benchmarks-results.json: what a reader of docs/benchmarks.md relies on
(the tables' figures and ratios, the targets, the plot), merging result files,
and `benches/run --report` writing its files."""

import copy
import json
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

BENCHES = Path(__file__).resolve().parents[1]
REPO = BENCHES.parent
if str(BENCHES) not in sys.path:
    sys.path.insert(0, str(BENCHES))

from renewd_bench import report  # noqa: E402
from renewd_bench.common import Fail, fmt  # noqa: E402

RESULTS = REPO / "docs" / "benchmarks-results.json"
DOCS_MD = REPO / "docs" / "benchmarks.md"
DOCS_SVG = REPO / "docs" / "benchmarks.svg"
RUN = BENCHES / "run"
SVG = "{http://www.w3.org/2000/svg}"
MASS_HEADER = "| N | tool |"
TARGETS_HEADER = "| target | measured |"
# How each tool's row in the mass table begins (independent of report.TOOL_LABEL).
ROW_START = {"renewd": "**renewd**, SIGUSR1", "renewd-hi": "renewd, SIGUSR1",
             "ceiling": "ceiling: minimal client", "lego": "lego renew",
             "certbot": "certbot renew"}


def stored():
    return json.loads(RESULTS.read_text())


def docs_section():
    """What docs/benchmarks.md holds between its results markers."""
    text = DOCS_MD.read_text()
    return text.split(report.RESULTS_BEGIN, 1)[1].split(report.RESULTS_END, 1)[0]


def table(md, header):
    """The rows of the markdown table whose header line starts with `header`, as cells."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip()[1:-1].split("|")])
    return rows


def mass_row(rows, tool, n):
    found = [r for r in rows if r[0] == f"{n:,}" and r[1].startswith(ROW_START[tool])]
    assert len(found) == 1, (tool, n, found)
    return found[0]


def rate(res, tool, n):
    return next(r["certs_per_s"] for r in res["mass"] if r["tool"] == tool and r["n"] == n)


class StoredResults(unittest.TestCase):
    """docs/benchmarks-results.json rendered as docs/benchmarks.md shows it."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.res = stored()
        cls.md = report.markdown(cls.res)
        cls.rows = table(cls.md, MASS_HEADER)

    def test_docs_results_section_is_the_stored_results_rendered(self):
        # The docs' note (the first line, "> ...") is given with --note when rendering.
        section = docs_section()
        first = section.lstrip("\n").split("\n", 1)[0]
        res = stored()
        res["meta"]["note"] = first[2:] if first.startswith("> ") else None
        self.assertEqual(section, "\n" + report.markdown(res) + "\n",
                         "docs/benchmarks.md's results are not docs/benchmarks-results.json "
                         "rendered: benches/run --report docs/benchmarks-results.json --docs")

    def test_docs_mass_table_figures_are_rendered(self):
        docs_rows = table(docs_section(), MASS_HEADER)
        self.assertTrue(docs_rows)
        self.assertEqual(docs_rows, self.rows)

    def test_one_row_per_measurement_with_its_figures(self):
        self.assertEqual(len(self.rows), len(self.res["mass"]))
        for r in self.res["mass"]:
            row = mass_row(self.rows, r["tool"], r["n"])
            self.assertEqual(row[2], f"{r['wall_s']:,.2f} s")
            self.assertEqual(row[3], f"{r['certs_per_s']:,.1f}")
            self.assertEqual(row[4], f"{r['cpu_s']:,.2f} s")
            self.assertEqual(row[5], f"{r['peak_rss_kib'] / 1024:,.1f} MiB")
            self.assertEqual(row[6], f"{r['ca_cpu_s']:,.1f} s")

    def test_ratio_is_renewds_certs_per_second_over_the_rows(self):
        for r in self.res["mass"]:
            row = mass_row(self.rows, r["tool"], r["n"])
            if r["tool"] == "renewd":
                self.assertEqual(row[7], "")
            else:
                ratio = rate(self.res, "renewd", r["n"]) / r["certs_per_s"]
                self.assertEqual(row[7], f"{ratio:.1f}×", (r["tool"], r["n"]))

    def test_repeated_runs_show_median_and_range(self):
        repeated = [r for r in self.res["mass"] if len(r.get("samples", [])) > 1]
        self.assertTrue(repeated, "the stored results have repeated runs")
        for r in repeated:
            row = mass_row(self.rows, r["tool"], r["n"])
            self.assertIn(f"(median of {len(r['samples'])}: {min(r['samples']):,.1f}–"
                          f"{max(r['samples']):,.1f} certs/s)", row[1])
            self.assertIn(r["certs_per_s"], r["samples"])

    def test_rows_by_n_then_fastest_client_first(self):
        order = ["ceiling", "renewd-hi", "renewd", "lego", "certbot"]
        keys = []
        for row in self.rows:
            tool = next(t for t in order if row[1].startswith(ROW_START[t]))
            keys.append((int(row[0].replace(",", "")), order.index(tool)))
        self.assertEqual(keys, sorted(keys))

    def test_targets(self):
        rows = {r[0]: r[1:] for r in table(self.md, TARGETS_HEADER)}
        big = max(r["n"] for r in self.res["mass"])
        rd = rate(self.res, "renewd", big)
        for tool, want in (("certbot", 20), ("lego", 5)):
            ratio = rd / rate(self.res, tool, big)
            self.assertEqual(rows[f"≥ {want}× {tool} at N = {big:,}"],
                             [f"{ratio:.1f}×", "✅ met" if ratio >= want else "❌ not met"])
        ceiling = rate(self.res, "ceiling", big) / rd
        self.assertEqual(rows[f"within 1.5× of Pebble's ceiling at N = {big:,}"],
                         [f"ceiling is {ceiling:.2f}× renewd",
                          "✅ met" if ceiling <= 1.5 else "❌ not met"])
        idle = self.res["idle"]
        self.assertIn(f"idle RSS < 20 MB ({idle['n']:,} certificates)", rows)
        st = self.res["startup"]
        self.assertEqual(rows[f"startup < 1 s ({st['n']:,} certificates)"][0],
                         f"READY {st['ready_s']:.3f} s, status answered "
                         f"{st['status_answered_s']:.3f} s")
        lat = self.res["latency"]
        measured, verdict = rows[f"SIGUSR1 → first newOrder < 100 ms ({lat['n']:,} certificates)"]
        for t in lat["trials"]:
            self.assertIn(f"{t['kind']} {t['first_new_order_ms']:,.1f} ms", measured)
        self.assertEqual(verdict,
                         "✅ met" if lat["first_new_order_ms_max"] < 100 else "❌ not met")

    def test_parts_c_d_e_and_the_run(self):
        m = self.res["meta"]
        self.assertIn(f"Run: {m['started']} on `{m['host']}` ({m['cpus']} CPUs", self.md)
        self.assertIn(f"merged from {len(m['merged_from'])} runs", self.md)
        for heading in ("### Mass forced renewal (a) and Pebble's ceiling (b)", "### Targets",
                        "### Idle daemon (c)", "### Startup (d)",
                        "### SIGUSR1 → first newOrder (e)"):
            self.assertIn("\n" + heading + "\n", self.md)
        self.assertIn("![certificates per second vs N](benchmarks.svg)", self.md)
        trials = table(self.md, "| trial |")
        self.assertEqual([r[0].split(":")[0] for r in trials],
                         [t["kind"] for t in self.res["latency"]["trials"]])
        for row, t in zip(trials, self.res["latency"]["trials"]):
            self.assertEqual(row[3], f"**{t['first_new_order_ms']:,.1f}**")

    def test_pebble_deadlocks_are_reported(self):
        res = stored()
        for r in res["mass"] + [res[k] for k in ("idle", "startup", "latency")]:
            r["pebble_deadlocks"] = 0
        self.assertNotIn("Pebble deadlocked", report.markdown(res))
        res["mass"][0]["pebble_deadlocks"] = 2
        res["idle"]["pebble_deadlocks"] = 1
        md = report.markdown(res)
        r = res["mass"][0]
        self.assertIn("Pebble deadlocked and the measurement was repeated on a fresh Pebble: "
                      f"{r['tool']} N = {r['n']:,} (2×), idle (1×).", md)

    def test_a_partial_run_renders(self):
        res = stored()
        for part in ("idle", "startup", "latency"):
            res[part] = None
        res["mass"] = [r for r in res["mass"] if r["tool"] == "renewd"]
        md = report.markdown(res)
        self.assertNotIn("### Idle daemon (c)", md)
        self.assertEqual(len(table(md, MASS_HEADER)), len(res["mass"]))
        del res["mass"]
        self.assertIn("### Targets", report.markdown(res))


class Merge(unittest.TestCase):
    """--report A,B: B's measurements replace A's of the same tool and N, or part."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)
        self.a = stored()
        self.b = copy.deepcopy(self.a)
        renewd = dict(next(r for r in self.a["mass"] if r["tool"] == "renewd" and r["n"] == 1000),
                      certs_per_s=500.0, wall_s=2.0)
        del renewd["samples"]
        ceiling20 = dict(next(r for r in self.a["mass"] if r["tool"] == "ceiling"), n=20,
                         certs_per_s=123.0)
        self.b["mass"] = [renewd, ceiling20]
        self.b["meta"].update(n=[20, 1000], duration_s=600.0, loadavg_after=[9.0, 8.0, 7.0])
        self.b["meta"].pop("merged_from")
        self.b["idle"] = dict(self.a["idle"], rss_kib=4321)
        self.b["startup"] = None
        del self.b["latency"]
        self.pa, self.pb = self.dir / "a.json", self.dir / "b.json"
        self.pa.write_text(json.dumps(self.a))
        self.pb.write_text(json.dumps(self.b))

    def tearDown(self):
        self.tmp.cleanup()

    def test_second_replaces_first(self):
        res = report.merge_results([str(self.pa), str(self.pb)])
        key = [(r["tool"], r["n"]) for r in res["mass"]]
        self.assertEqual(len(key), len(set(key)))
        self.assertEqual(len(res["mass"]), len(self.a["mass"]) + 1)
        self.assertEqual(rate(res, "renewd", 1000), 500.0)
        self.assertEqual(rate(res, "ceiling", 20), 123.0)
        for r in self.a["mass"]:
            if (r["tool"], r["n"]) != ("renewd", 1000):
                self.assertIn(r, res["mass"])
        self.assertEqual(res["idle"]["rss_kib"], 4321)
        self.assertEqual(res["startup"], self.a["startup"])  # the second run has none
        self.assertEqual(res["latency"], self.a["latency"])
        m = res["meta"]
        self.assertEqual(m["n"], [20, 100, 1000])
        self.assertAlmostEqual(m["duration_s"], self.a["meta"]["duration_s"] + 600.0)
        self.assertEqual(m["loadavg_after"], [9.0, 8.0, 7.0])
        self.assertEqual(m["merged_from"], [str(self.pa), str(self.pb)])

    def test_the_merged_table_uses_the_second_runs_figures(self):
        res = report.merge_results([str(self.pa), str(self.pb)])
        rows = table(report.markdown(res), MASS_HEADER)
        self.assertEqual(mass_row(rows, "renewd", 1000)[3], "500.0")
        self.assertEqual(mass_row(rows, "renewd", 1000)[2], "2.00 s")
        self.assertNotIn("median of", mass_row(rows, "renewd", 1000)[1])
        ratio = 500.0 / rate(self.a, "certbot", 1000)
        self.assertEqual(mass_row(rows, "certbot", 1000)[7], f"{ratio:.1f}×")
        self.assertEqual(mass_row(rows, "ceiling", 20)[3], "123.0")
        self.assertEqual(mass_row(rows, "renewd", 100), mass_row(table(
            report.markdown(self.a), MASS_HEADER), "renewd", 100))

    def test_order_decides(self):
        res = report.merge_results([str(self.pb), str(self.pa)])
        self.assertEqual(rate(res, "renewd", 1000), rate(self.a, "renewd", 1000))
        self.assertEqual(res["idle"], self.a["idle"])

    def test_one_file_is_itself(self):
        self.assertEqual(report.merge_results([str(self.pa)]), self.a)


class ReportCommand(unittest.TestCase):
    """`benches/run --report`: measures nothing, writes markdown and SVG beside the JSON."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def run_report(self, *args):
        docs_before = DOCS_MD.read_bytes(), DOCS_SVG.read_bytes()
        p = subprocess.run([sys.executable, str(RUN), "--report", *args], cwd=self.dir,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual((DOCS_MD.read_bytes(), DOCS_SVG.read_bytes()), docs_before,
                         "--report without --docs must leave docs/ alone")
        return p.stdout

    def test_one_file(self):
        path = self.dir / "results-x.json"
        path.write_text(RESULTS.read_text())
        out = self.run_report(str(path))
        md = report.markdown(stored())
        self.assertEqual(out, md + "\n")
        self.assertEqual((self.dir / "results-x.md").read_text(), md + "\n")
        ET.parse(self.dir / "results-x.svg")

    def test_merging_two_files(self):
        a = stored()
        b = copy.deepcopy(a)
        b["mass"] = [dict(next(r for r in a["mass"] if r["tool"] == "lego" and r["n"] == 100),
                          certs_per_s=3.25, wall_s=30.77)]
        (self.dir / "a.json").write_text(json.dumps(a))
        (self.dir / "b.json").write_text(json.dumps(b))
        out = self.run_report("a.json,b.json", "--note", "re-measured lego")
        merged = json.loads((self.dir / "a-merged.json").read_text())
        self.assertEqual(merged["meta"]["json"], "a-merged.json")
        self.assertEqual(merged["meta"]["merged_from"], ["a.json", "b.json"])
        self.assertEqual(rate(merged, "lego", 100), 3.25)
        md = (self.dir / "a-merged.md").read_text()
        self.assertEqual(out, md)
        self.assertTrue(md.startswith("> re-measured lego\n"))
        self.assertEqual(mass_row(table(md, MASS_HEADER), "lego", 100)[3], "3.2")
        ET.parse(self.dir / "a-merged.svg")


class Plot(unittest.TestCase):
    """The SVG plot: well-formed, one point per measurement, one line per tool."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)
        self.res = stored()

    def tearDown(self):
        self.tmp.cleanup()

    def test_docs_plot_is_the_stored_results(self):
        ET.parse(DOCS_SVG)
        path = self.dir / "docs.svg"
        m = self.res["meta"]
        report.svg_plot(self.res["mass"], path,
                        f"{m['started']}, {m['cpus']} CPUs, Pebble 2.10 on loopback")
        self.assertEqual(path.read_text(), DOCS_SVG.read_text())

    def test_points_lines_and_legend(self):
        path = self.dir / "plot.svg"
        report.svg_plot(self.res["mass"], path, "a subtitle")
        root = ET.parse(path).getroot()
        self.assertEqual(root.tag, SVG + "svg")
        self.assertEqual(root.get("viewBox"), f"0 0 {root.get('width')} {root.get('height')}")
        points = [r for r in self.res["mass"] if r["certs_per_s"] > 0]
        self.assertEqual(len(root.findall(SVG + "circle")), len(points))
        tools = {r["tool"] for r in points}
        lines = root.findall(SVG + "polyline")
        self.assertEqual(len(lines), sum(1 for t in tools
                                         if len({r["n"] for r in points if r["tool"] == t}) > 1))
        for line in lines:
            self.assertEqual(len(line.get("points").split()), len({r["n"] for r in points}))
        texts = [t.text for t in root.iter(SVG + "text")]
        self.assertIn("a subtitle", texts)
        for r in points:
            self.assertIn(f"{r['certs_per_s']:.3g}", texts)
        for tool in tools:
            conc = next(r.get("max_concurrent") for r in points if r["tool"] == tool)
            self.assertIn(report.TOOL_LEGEND[tool].format(c=conc), texts)

    def test_nothing_to_plot_writes_nothing(self):
        path = self.dir / "empty.svg"
        report.svg_plot([], path, "x")
        self.assertFalse(path.exists())


class WriteDocs(unittest.TestCase):
    """--docs: the section between the markers and the plot, nothing else."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.docs = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_replaces_only_the_results_section(self):
        text = DOCS_MD.read_text()
        (self.docs / "benchmarks.md").write_text(text)
        res = stored()
        report.write_docs(res, self.docs)
        new = (self.docs / "benchmarks.md").read_text()
        head, rest = text.split(report.RESULTS_BEGIN, 1)
        tail = rest.split(report.RESULTS_END, 1)[1]
        self.assertEqual(new, head + report.RESULTS_BEGIN + "\n" + report.markdown(res) + "\n"
                         + report.RESULTS_END + tail)
        self.assertEqual((self.docs / "benchmarks.svg").read_text(), DOCS_SVG.read_text())

    def test_refuses_a_file_without_markers(self):
        (self.docs / "benchmarks.md").write_text("# Benchmarks\n")
        with self.assertRaises(Fail):
            report.write_docs(stored(), self.docs)
        self.assertEqual((self.docs / "benchmarks.md").read_text(), "# Benchmarks\n")


class Format(unittest.TestCase):
    def test_fmt(self):
        self.assertEqual(fmt(None), "–")
        self.assertEqual(fmt(2582.15, 2), "2,582.15")
        self.assertEqual(fmt(219.04), "219.0")
        self.assertEqual(fmt(0.004, 2), "0.004")
        self.assertEqual(fmt(0.0), "0.0")
        self.assertEqual(fmt(10000), "10,000")


if __name__ == "__main__":
    unittest.main()
