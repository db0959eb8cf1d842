"""The report: the markdown summary (tables of parts a and b, the targets, the
paragraphs of parts c, d and e; part f's in report_scale) and the SVG plot
(certs/s vs N, log-log) rendered
from a run's raw results; merging several results files (later runs replace
earlier measurements); writing the results section of docs/benchmarks.md,
between its markers, and docs/benchmarks.svg."""

import json
import math
from pathlib import Path

from .common import Fail, fmt
from .part_e_latency import LATENCY_TRIALS
from . import report_scale

RESULTS_BEGIN = "<!-- benchmark results: begin (written by benches/run) -->"
RESULTS_END = "<!-- benchmark results: end -->"

# Rows and lines of parts a and b: order, label in the table, colour and legend in the plot.
TOOL_ORDER = ["ceiling", "renewd-hi", "renewd", "lego", "certbot"]
TOOL_LABEL = {
    "renewd": lambda r: f"**renewd**, SIGUSR1, max_concurrent {r['max_concurrent']}",
    "renewd-hi": lambda r: f"renewd, SIGUSR1, max_concurrent {r['max_concurrent']}",
    "ceiling": lambda r: f"ceiling: minimal client, {r['max_concurrent']} in flight",
    "lego": lambda r: "lego renew, one run per certificate",
    "certbot": lambda r: "certbot renew --force-renewal",
}
TOOL_COLOR = {"renewd": "#1f77b4", "renewd-hi": "#9ecae1", "ceiling": "#7f7f7f",
              "lego": "#ff7f0e", "certbot": "#2ca02c"}
TOOL_LEGEND = {"renewd": "renewd (max_concurrent {c})", "renewd-hi": "renewd (max_concurrent {c})",
               "ceiling": "ceiling (minimal ACME client)", "lego": "lego, one run per cert",
               "certbot": "certbot renew"}


def mib(kib):
    return None if kib is None else kib / 1024


def verdict(ok):
    return "✅ met" if ok else "❌ not met"


def run_sizes(res):
    """The N a run measured: parts a and b's, and part f's."""
    m = res["meta"]
    sizes = set(m["n"]) if res.get("mass") or "a" in m.get("parts", "ab") else set()
    sizes |= {r["n"] for r in res.get("scale") or []}
    return sorted(sizes or m["n"])


def markdown(res):
    out = []
    m = res["meta"]
    if m.get("note"):
        out += [f"> {m['note']}", ""]
    out.append(f"Run: {m['started']} on `{m['host']}` ({m['cpus']} CPUs, {m['kernel']}), "
               f"load average before {', '.join(f'{x:.2f}' for x in m['loadavg_before'])}"
               f" / after {', '.join(f'{x:.2f}' for x in m['loadavg_after'])}; "
               f"{'**quick run** (development only), ' if m['quick'] else ''}"
               f"N = {', '.join(f'{n:,}' for n in run_sizes(res))}; "
               f"took {m['duration_s'] / 60:.1f} min. Raw results: `{m['json']}`"
               + (f", merged from {len(m['merged_from'])} runs: "
                  + ", ".join(f"`{Path(p).name}`" for p in m["merged_from"])
                  if m.get("merged_from") else "") + ".")
    out.append("")
    out.append(f"Versions: {m['versions'].get('renewd', '?')}, certbot "
               f"{m['versions'].get('certbot', '?')}, {m['versions'].get('lego', '?')}, "
               "Pebble 2.10.")
    out.append("")
    mass = res.get("mass", [])
    if mass:
        out.append("### Mass forced renewal (a) and Pebble's ceiling (b)")
        out.append("")
        out.append("| N | tool | wall time | certs/s | client CPU | client peak RSS | CA CPU "
                   "| renewd's certs/s ÷ this |")
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|")
        for n in sorted({r["n"] for r in mass}):
            rows = [r for r in mass if r["n"] == n]
            rd = next((r for r in rows if r["tool"] == "renewd"), None)
            for r in sorted(rows, key=lambda r: TOOL_ORDER.index(r["tool"])):
                ratio = ""
                if rd and r is not rd and r["certs_per_s"]:
                    ratio = f"{rd['certs_per_s'] / r['certs_per_s']:.1f}×"
                tool = TOOL_LABEL[r["tool"]](r)
                if len(r.get("samples", [])) > 1:
                    tool += (f" (median of {len(r['samples'])}: {fmt(min(r['samples']))}–"
                             f"{fmt(max(r['samples']))} certs/s)")
                out.append(f"| {n:,} | {tool} | {fmt(r['wall_s'], 2)} s | "
                           f"{fmt(r['certs_per_s'])} | {fmt(r['cpu_s'], 2)} s | "
                           f"{fmt(mib(r['peak_rss_kib']))} MiB | {fmt(r['ca_cpu_s'], 1)} s | "
                           f"{ratio} |")
        out.append("")
        out.append("![certificates per second vs N](benchmarks.svg)")
        out.append("")
    retried = [f"{r['tool']} N = {r['n']:,} ({r['pebble_deadlocks']}×)" for r in mass
               if r.get("pebble_deadlocks")]
    retried += [f"{k} ({res[k]['pebble_deadlocks']}×)" for k in ("idle", "startup", "latency")
                if res.get(k) and res[k].get("pebble_deadlocks")]
    if retried:
        out.append("Pebble deadlocked and the measurement was repeated on a fresh Pebble: "
                   + ", ".join(retried) + ".")
        out.append("")
    out.append("### Targets")
    out.append("")
    out.append("| target | measured | |")
    out.append("|---|---:|---|")
    big = max((r["n"] for r in mass), default=None)

    def rate(tool, n):
        r = next((r for r in mass if r["tool"] == tool and r["n"] == n), None)
        return r["certs_per_s"] if r else None

    if big is not None:
        rd = rate("renewd", big)
        for tool, want in (("certbot", 20), ("lego", 5)):
            other = rate(tool, big)
            if rd and other:
                out.append(f"| ≥ {want}× {tool} at N = {big:,} | {rd / other:.1f}× | "
                           f"{verdict(rd / other >= want)} |")
        ceil = rate("ceiling", big)
        if rd and ceil:
            out.append(f"| within 1.5× of Pebble's ceiling at N = {big:,} | ceiling is "
                       f"{ceil / rd:.2f}× renewd | {verdict(ceil / rd <= 1.5)} |")
        rall = rate("renewd-hi", big)
        rall_c = next((r["max_concurrent"] for r in mass if r["tool"] == "renewd-hi"), None)
        if rall and ceil:
            out.append(f"| (same, renewd with max_concurrent {rall_c}) | ceiling is "
                       f"{ceil / rall:.2f}× renewd | {verdict(ceil / rall <= 1.5)} |")
    idle = res.get("idle")
    if idle:
        out.append(f"| idle RSS < 20 MB ({idle['n']:,} certificates) | "
                   f"{fmt(idle['rss_kib'] / 1000)} MB ({fmt(mib(idle['rss_kib']))} MiB) | "
                   f"{verdict(idle['rss_kib'] * 1024 < 20e6)} |")
    st = res.get("startup")
    if st and st.get("ready_s") is not None:
        worst = max(st["ready_s"], st["status_answered_s"] or 0)
        out.append(f"| startup < 1 s ({st['n']:,} certificates) | READY {fmt(st['ready_s'], 3)} s,"
                   f" status answered {fmt(st['status_answered_s'], 3)} s | "
                   f"{verdict(worst < 1.0)} |")
    lat = res.get("latency")
    if lat and lat.get("first_new_order_ms_max") is not None:
        per = ", ".join(f"{t['kind']} {fmt(t['first_new_order_ms'])} ms" for t in lat["trials"])
        out.append(f"| SIGUSR1 → first newOrder < 100 ms ({lat['n']:,} certificates) | "
                   f"{per} | {verdict(lat['first_new_order_ms_max'] < 100)} |")
    out.append("")
    if idle:
        perf = idle.get("perf") or {}
        out.append("### Idle daemon (c)")
        out.append("")
        out.append(f"{idle['n']:,} issued certificates, none to renew, default check_interval "
                   f"(6h), measured over {idle['seconds']} s after startup settled: "
                   f"RSS {fmt(mib(idle['rss_kib']))} MiB (peak since start "
                   f"{fmt(mib(idle['peak_rss_kib']))} MiB), {idle['threads']} threads, CPU "
                   f"{fmt(idle['cpu_s'], 2)} s, "
                   f"{idle['voluntary_ctxt_switches']} voluntary context switches"
                   + (f" ({idle['threads_exited']} thread(s) exited meanwhile, taking their "
                      "counts along)" if idle.get("threads_exited") else "") + ", "
                   + (f"{idle['epoll_waits']} epoll waits, "
                      f"{perf.get('syscalls:sys_enter_futex', '–')} futex calls "
                      "(perf stat), " if perf else "")
                   + f"{idle['log_lines']} log lines"
                   + (f"; {idle['ari_polls']} ARI polls were due meanwhile (each certificate "
                      "is polled once per check_interval, at its own time: "
                      f"{idle['n'] * idle['seconds'] / 21600:.1f} expected)"
                      if idle.get("ari_polls") is not None else "") + ".")
        out.append("")
    if st:
        out.append("### Startup (d)")
        out.append("")
        out.append(f"{st['n']:,} certificates, all issued by renewd itself against Pebble "
                   f"(real, distinct certificates; {fmt(st['initial_issue_s'])} s at "
                   f"max_concurrent {st.get('issue_concurrency')}), page cache warm, median of "
                   f"{len(st['trials'])}: `renewd run` → READY=1 (sd_notify) "
                   f"{fmt(st['ready_s'], 3)} s; → control socket answers "
                   f"`{{\"cmd\":\"status\"}}` {fmt(st['status_answered_s'], 3)} s "
                   f"(reply {fmt((st['trials'][0]['status_reply_bytes'] or 0) / 1e6, 1)} MB);"
                   f" a status query on the running daemon takes "
                   f"{fmt(st['status_query_when_running_s'], 3)} s; RSS after READY "
                   f"{fmt(mib(st['rss_after_ready_kib']))} MiB.")
        out.append("")
    if lat:
        out.append("### SIGUSR1 → first newOrder (e)")
        out.append("")
        out.append(f"{lat['n']:,} certificates, max_concurrent "
                   f"{lat.get('max_concurrent', res['meta']['concurrency'])}, "
                   f"requests timestamped by {lat.get('relay', '?')} in front of Pebble; "
                   "ms after the signal:")
        out.append("")
        out.append("| trial | `order started` logged | first request | first newOrder |")
        out.append("|---|---:|---|---:|")
        for t in lat["trials"]:
            what = LATENCY_TRIALS.get(t.get("kind"), "").format(idle=lat.get("idle_s"))
            out.append(f"| {t.get('kind')}: {what} | {fmt(t['log_order_started_ms'])} | "
                       f"{fmt(t['first_request_ms'])} (`{t.get('first_request')}`) | "
                       f"**{fmt(t['first_new_order_ms'])}** |")
        out.append("")
    out += report_scale.markdown(res)
    return "\n".join(out)


def svg_plot(mass, path, subtitle):
    """certs/s vs N, log-log, one line per tool."""
    W, H, L, R, T, B = 820, 440, 70, 250, 50, 55
    pw, ph = W - L - R, H - T - B
    ns = sorted({r["n"] for r in mass})
    rates = [r["certs_per_s"] for r in mass if r["certs_per_s"] > 0]
    if not ns or not rates:
        return
    y0 = 10 ** math.floor(math.log10(min(rates)))
    y1 = 10 ** math.ceil(math.log10(max(rates)))
    if y1 <= y0:
        y1 = y0 * 10
    x0, x1 = (ns[0] / 2, ns[-1] * 2) if len(ns) > 1 else (ns[0] / 10, ns[0] * 10)

    def X(n):
        return L + pw * (math.log10(n) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))

    def Y(v):
        return T + ph * (1 - (math.log10(v) - math.log10(y0)) / (math.log10(y1) - math.log10(y0)))

    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="22" font-size="15" font-weight="bold">Mass forced renewal: '
         'certificates per second vs N (log-log)</text>',
         f'<text x="{L}" y="38" fill="#555">{subtitle}</text>']
    d = y0
    while d <= y1 * 1.0001:
        for m in (1, 2, 5):
            v = d * m
            if v < y0 or v > y1 * 1.0001:
                continue
            y = Y(v)
            s.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" '
                     f'stroke="#ddd" stroke-width="{1 if m == 1 else 0.5}"/>')
            s.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        d *= 10
    for n in ns:
        x = X(n)
        s.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{T + ph}" stroke="#ddd"/>')
        s.append(f'<text x="{x:.1f}" y="{T + ph + 18}" text-anchor="middle">{n:,}</text>')
    s.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    s.append(f'<text x="{L + pw / 2}" y="{H - 12}" text-anchor="middle">N (certificates)'
             '</text>')
    s.append(f'<text transform="translate(18 {T + ph / 2}) rotate(-90)" '
             'text-anchor="middle">certificates / second</text>')
    ly = T + 10
    for tool in TOOL_ORDER:
        pts = sorted((r["n"], r["certs_per_s"]) for r in mass
                     if r["tool"] == tool and r["certs_per_s"] > 0)
        if not pts:
            continue
        c = TOOL_COLOR[tool]
        dash = ' stroke-dasharray="6 4"' if tool in ("ceiling", "renewd-hi") else ""
        if len(pts) > 1:
            s.append(f'<polyline fill="none" stroke="{c}" stroke-width="2.5"{dash} points="'
                     + " ".join(f"{X(n):.1f},{Y(v):.1f}" for n, v in pts) + '"/>')
        for n, v in pts:
            s.append(f'<circle cx="{X(n):.1f}" cy="{Y(v):.1f}" r="4.5" fill="{c}"/>')
            dy = 16 if tool in ("renewd", "lego") else -6  # keep neighbours apart
            s.append(f'<text x="{X(n) + 7:.1f}" y="{Y(v) + dy:.1f}" fill="{c}" '
                     f'font-size="11">{v:.3g}</text>')
        conc = next(r.get("max_concurrent") for r in mass if r["tool"] == tool)
        label = TOOL_LEGEND[tool].format(c=conc)
        s.append(f'<line x1="{L + pw + 15}" y1="{ly}" x2="{L + pw + 40}" y2="{ly}" '
                 f'stroke="{c}" stroke-width="2.5"{dash}/>')
        s.append(f'<text x="{L + pw + 46}" y="{ly + 4}">{label}</text>')
        ly += 20
    s.append("</svg>")
    Path(path).write_text("\n".join(s) + "\n")


def write_docs(res, docs_dir):
    md_path = docs_dir / "benchmarks.md"
    text = md_path.read_text()
    if RESULTS_BEGIN not in text or RESULTS_END not in text:
        raise Fail(f"{md_path} lacks the results markers")
    head, rest = text.split(RESULTS_BEGIN, 1)
    _, tail = rest.split(RESULTS_END, 1)
    md_path.write_text(head + RESULTS_BEGIN + "\n" + markdown(res) + "\n" + RESULTS_END + tail)
    subtitle = f"{res['meta']['started']}, {res['meta']['cpus']} CPUs, Pebble 2.10 on loopback"
    svg_plot(res.get("mass", []), docs_dir / "benchmarks.svg", subtitle)
    report_scale.svg(res, docs_dir / report_scale.SCALE_SVG, subtitle)


# --------------------------------------------------------------------------------------


def merge_results(paths):
    """Several runs' raw results as one: later runs replace earlier measurements of the
    same tool and N (and parts c, d, e), e.g. to re-measure a slice after a fix."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    res = runs[0]
    for run in runs[1:]:
        replaced = {(r["tool"], r["n"]) for r in run.get("mass", [])}
        res["mass"] = [r for r in res.get("mass", []) if (r["tool"], r["n"]) not in replaced]
        res["mass"] += run.get("mass", [])
        for part in ("idle", "startup", "latency"):
            if run.get(part):
                res[part] = run[part]
        sizes = {r["n"] for r in run.get("scale") or []}
        res["scale"] = [r for r in res.get("scale") or [] if r["n"] not in sizes]
        res["scale"] += run.get("scale") or []
        m, other = res["meta"], run["meta"]
        m["n"] = sorted(set(m["n"]) | set(other["n"]))
        m["duration_s"] += other["duration_s"]
        m["loadavg_after"] = other["loadavg_after"]
    if len(runs) > 1:
        res["meta"]["merged_from"] = [str(p) for p in paths]
    return res
