"""The report of part f (scale): the table of every figure against N, the
targets of issue 19 checked at each N, and the SVG with one small plot per
figure against N (log N axis, the target as a dashed line), written beside the
main plot as benchmarks-scale.svg."""

import math
from pathlib import Path

from .common import fmt

KIB = 1024
SCALE_SVG = "benchmarks-scale.svg"


def _get(r, path):
    for k in path.split("."):
        if r is None:
            return None
        r = r.get(k)
    return r


def mass_rate(res, tool, n):
    r = next((r for r in res.get("mass", []) if r["tool"] == tool and r["n"] == n), None)
    return r["certs_per_s"] if r else None


# Each figure: key, label, unit, value(r) -> float, target (value, "max"/"min", at
# which N: None = every N), decimals. The order is the table's and the plot's.
FIGURES = [
    ("ready", "startup: READY=1", "s", lambda r: r.get("ready_s"), (2.0, None), 3),
    ("first_status", "startup: first status answer", "s",
     lambda r: r.get("status_answered_s"), (2.0, None), 3),
    ("rss_idle", "idle RSS", "MB", lambda r: _mb(_get(r, "idle.rss_kib")), (100.0, None), 1),
    ("wakeups", "idle wake-ups (epoll waits) per minute", "/min",
     lambda r: _per_min(r, "idle.epoll_waits"), None, 0),
    ("polls_idle", "idle ARI polls per minute", "/min",
     lambda r: _per_min(r, "idle.ari_polls"), None, 1),
    ("bytes_one_raw", "bytes written around one forced renewal, all", "KiB",
     lambda r: _kib(_get(r, "forced_one.io.write_bytes")), None, 1),
    ("bytes_one", "bytes written: one forced renewal, less the idle rate", "KiB",
     lambda r: _kib(net_one(r)), (64.0, None), 1),
    ("bytes_mass", "bytes written per renewal: mass renewal, less the idle rate", "KiB",
     lambda r: _kib(net_mass(r)), (64.0, None), 1),
    ("ari_max", "ARI polls started in one second, most, from the first start on", "",
     lambda r: _get(r, "ari.max_per_second"), None, 0),
    ("ari_max_idle", "ARI polls started in one second, most, idle", "",
     lambda r: _get(r, "ari.max_per_second_idle"), None, 0),
    ("ari_in_flight", "ARI polls in flight, most", "", lambda r: _get(r, "ari.max_in_flight"),
     None, 0),
    ("status_name", "`status NAME`", "ms", lambda r: _ms(r.get("status_name_s")),
     (50.0, None), 1),
    ("status_json", "`status --json`, all", "s", lambda r: r.get("status_json_s"),
     (2.0, None), 2),
    ("status_table", "`status` (table)", "s", lambda r: r.get("status_table_s"), None, 2),
    ("check_config", "`check-config`", "s", lambda r: r.get("check_config_s"), (2.0, None), 3),
    ("sighup", "SIGHUP → `config reloaded`", "s", lambda r: r.get("sighup_s"), (2.0, None), 3),
]


def _mb(kib):
    return None if kib is None else kib * 1024 / 1e6


def _kib(b):
    return None if b is None else b / KIB


def _ms(s):
    return None if s is None else s * 1e3


def _per_min(r, path):
    v, secs = _get(r, path), _get(r, "idle.seconds")
    return None if v is None or not secs else v * 60 / secs


def idle_rate(r):
    """Bytes the idle daemon wrote per second (its ARI polls' bookkeeping), which
    goes on while a renewal is measured."""
    i = r.get("idle") or {}
    b = _get(i, "io.write_bytes")
    return b / i["seconds"] if b is not None and i.get("seconds") else 0.0


def net_one(r):
    f = r.get("forced_one") or {}
    b = _get(f, "io.write_bytes")
    if b is None:
        return None
    return max(0.0, b - idle_rate(r) * f.get("seconds", 0.0))


def net_mass(r):
    m = r.get("mass") or {}
    b = _get(m, "io.write_bytes")
    if b is None or not m.get("renewed"):
        return None
    return max(0.0, b - idle_rate(r) * m.get("wall_s", 0.0)) / m["renewed"]


def ari_even(r):
    """Polls are spread evenly when no second of the idle daemon holds more than 4
    times the mean rate (n / 6 h) plus 5: polls that come due together break it.
    (The first start's first minute is reported beside it: certificates without a
    remembered poll time are polled at once, by design.)"""
    a = r.get("ari") or {}
    if a.get("max_per_second_idle") is None:
        return None
    return a["max_per_second_idle"] <= 4 * a["expected_per_second"] + 5


def ok(value, target):
    if value is None or target is None:
        return None
    return value <= target[0]


def verdict(v):
    return "–" if v is None else "✅" if v else "❌"


def markdown(res):
    scale = sorted(res.get("scale") or [], key=lambda r: r["n"])
    if not scale:
        return []
    ns = [r["n"] for r in scale]
    out = ["### Scale (f): one daemon, N certificates", ""]
    out.append("| figure | target | " + " | ".join(f"N = {n:,}" for n in ns) + " |")
    out.append("|---|---|" + "---:|" * len(ns))
    for key, label, unit, value, target, digits in FIGURES:
        cells = []
        for r in scale:
            v = value(r)
            mark = verdict(ok(v, target)) if target else ""
            cells.append(f"{fmt(v, digits)} {unit} {mark}".strip() if v is not None else "–")
        tgt = f"≤ {fmt(target[0], 0)} {unit}" if target else ""
        out.append(f"| {label} | {tgt} | " + " | ".join(cells) + " |")
    cells = []
    for r in scale:
        a = r.get("ari") or {}
        cells.append(f"{fmt(a.get('expected_per_second'), 2)}/s mean, "
                     f"{verdict(ari_even(r))}" if a else "–")
    out.append("| ARI polls spread over check_interval (6 h): mean rate; most in one second "
               "while idle ≤ 4 × mean + 5 | even | " + " | ".join(cells) + " |")
    cells = []
    for n in ns:
        rd, ceil = mass_rate(res, "renewd", n), mass_rate(res, "ceiling", n)
        cells.append(f"{rd / ceil:.2f}× ({fmt(rd)} vs {fmt(ceil)} certs/s) "
                     f"{verdict(rd / ceil >= 0.8)}" if rd and ceil else "–")
    out.append("| mass renewal: renewd ÷ ceiling client (parts a, b) | ≥ 0.8× at 10,000 | "
               + " | ".join(cells) + " |")
    out.append("")
    out.append(f"![each figure against N]({SCALE_SVG})")
    out.append("")
    for r in scale:
        out.append(details(r))
        out.append("")
    return out


def details(r):
    s, i, a, m = r.get("set") or {}, r.get("idle") or {}, r.get("ari") or {}, r.get("mass") or {}
    perf = i.get("perf") or {}
    return (
        f"N = {r['n']:,}: the set was issued in {fmt((s.get('issue_s') or 0) / 60)} min "
        f"({s.get('pebble_restarts', 0)} fresh Pebbles, max_concurrent "
        f"{s.get('issue_concurrency')}) on {s.get('issued_at', '?')} by renewd "
        f"{s.get('renewd_commit') or '?'}; load average after the part "
        f"{', '.join(f'{x:.2f}' for x in r.get('loadavg', []))}. "
        f"check-config runs {', '.join(fmt(x, 3) for x in r.get('check_config_runs', []))} s; "
        f"startups: " + "; ".join(
            f"READY {fmt(t['ready_s'], 3)} s, status {fmt(t['status_answered_s'], 3)} s "
            f"({fmt(t['status_reply_bytes'] / 1e6, 1)} MB), "
            f"{t.get('ari_polls_first_60s', '–')} ARI polls in its first minute"
            for t in r.get("startup_trials", [])) + ". "
        f"Idle {i.get('seconds')} s: {i.get('threads')} threads, CPU {fmt(i.get('cpu_s'), 2)} s, "
        f"{i.get('voluntary_ctxt_switches')} voluntary context switches, "
        f"{perf.get('syscalls:sys_enter_futex', '–')} futex calls, {i.get('ari_polls')} ARI "
        f"polls, {fmt(_kib(_get(i, 'io.write_bytes')), 1)} KiB written. "
        f"ARI: {a.get('polls_seen')} polls seen from the first start on, at most "
        f"{a.get('max_per_second')} in one second ({a.get('max_per_second_idle')} while idle), "
        f"at most {a.get('max_in_flight')} in flight (max_concurrent {r.get('max_concurrent')}). "
        f"Mass renewal (SIGUSR1): {m.get('renewed')} renewed in {fmt(m.get('wall_s'))} s"
        f"{'' if m.get('complete') else ' (stopped there)'}, "
        f"{fmt(_kib(_get(m, 'io.write_bytes')), 0)} KiB written in all.")


def svg(res, path, subtitle):
    """One small plot per figure against N (log N), target as a dashed red line."""
    scale = sorted(res.get("scale") or [], key=lambda r: r["n"])
    panels = []
    for key, label, unit, value, target, _ in FIGURES:
        pts = [(r["n"], value(r)) for r in scale if value(r) is not None]
        panels.append((f"{label} ({unit})" if unit else label, pts,
                       target[0] if target else None))
    rd = [(n, mass_rate(res, "renewd", n)) for n in sorted({r["n"] for r in res.get("mass", [])})]
    ceil = [(n, mass_rate(res, "ceiling", n)) for n, _ in rd]
    ratio = [(n, a / c) for (n, a), (_, c) in zip(rd, ceil) if a and c]
    panels.append(("mass renewal: renewd ÷ ceiling", ratio, 0.8))
    if not any(p[1] for p in panels):
        return
    cols, pw, ph, gap = 3, 250, 150, 70
    rows = math.ceil(len(panels) / cols)
    W, H = cols * (pw + gap) + 20, rows * (ph + gap) + 60
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         '<text x="20" y="22" font-size="15" font-weight="bold">One daemon, N certificates: '
         'each figure against N (dashed: target)</text>',
         f'<text x="20" y="40" fill="#555">{subtitle}</text>']
    for k, (title, pts, target) in enumerate(panels):
        x0, y0 = 20 + 50 + (k % cols) * (pw + gap), 60 + 25 + (k // cols) * (ph + gap)
        s += panel(x0, y0, pw - 50, ph - 25, title, pts, target)
    s.append("</svg>")
    Path(path).write_text("\n".join(s) + "\n")


def panel(x0, y0, w, h, title, pts, target):
    out = [title_lines(x0 - 45, y0 - 10, title),
           f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#333"/>']
    if not pts:
        out.append(f'<text x="{x0 + 10}" y="{y0 + h / 2}" fill="#999">not measured</text>')
        return out
    ns = [n for n, _ in pts]
    lo, hi = min(ns) / 2, max(ns) * 2
    top = max([v for _, v in pts] + ([target] if target else [])) * 1.15 or 1.0

    def X(n):
        return x0 + w * (math.log10(n) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    def Y(v):
        return y0 + h * (1 - v / top)

    for frac in (0, 0.5, 1):
        v = top * frac
        out.append(f'<line x1="{x0}" y1="{Y(v):.1f}" x2="{x0 + w}" y2="{Y(v):.1f}" '
                   'stroke="#eee"/>')
        out.append(f'<text x="{x0 - 4}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    for n in sorted(set(ns)):
        out.append(f'<text x="{X(n):.1f}" y="{y0 + h + 14}" text-anchor="middle">{n:,}</text>')
    if target:
        out.append(f'<line x1="{x0}" y1="{Y(target):.1f}" x2="{x0 + w}" y2="{Y(target):.1f}" '
                   'stroke="#d62728" stroke-dasharray="5 4"/>')
    pts = sorted(pts)
    if len(pts) > 1:
        out.append('<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="'
                   + " ".join(f"{X(n):.1f},{Y(v):.1f}" for n, v in pts) + '"/>')
    for n, v in pts:
        out.append(f'<circle cx="{X(n):.1f}" cy="{Y(v):.1f}" r="3.5" fill="#1f77b4"/>')
        out.append(f'<text x="{X(n) + 5:.1f}" y="{Y(v) - 5:.1f}" fill="#1f77b4">{v:.3g}</text>')
    return out


def title_lines(x, y, title, width=48):
    """A panel's title, on two lines when it would run into the next panel."""
    if len(title) <= width:
        return f'<text x="{x}" y="{y}" font-weight="bold">{title}</text>'
    cut = title.rfind(" ", 0, width)
    cut = cut if cut > 0 else width
    return (f'<text x="{x}" y="{y - 13}" font-weight="bold">{title[:cut]}'
            f'<tspan x="{x}" y="{y}">{title[cut:].strip()}</tspan></text>')
