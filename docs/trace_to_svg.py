#!/usr/bin/env python3
"""trace_to_svg.py - draws a conet trace file (CONET_TRACE=FILE) as an SVG timeline.

    CONET_TRACE=trace.json ./build/dev/docs/10_watching_the_loop
    python3 docs/trace_to_svg.py trace.json -o trace.svg     # open trace.svg in any browser

One row per reactor (its sleeps in epoll_wait, grey), and below it one row per coroutine:
a blue bar for each span the loop ran it, a line from each wait to what ended it (a wake-up,
a timer, a timeout, a cancellation or a close), labelled with the operation and descriptor.
Hover over anything for its details. Stretches where nothing happened (a person typing, a
timer running down) are cut short and marked with how long they lasted, so that microsecond
spans and second-long waits fit one picture; --linear draws time to scale instead.
--start and --length (milliseconds from the first event) cut a window out of a long trace.

The same file opens in Chrome's or Perfetto's trace viewer (ui.perfetto.dev). Standard
library only.
"""

import argparse
import json
import sys
from xml.sax.saxutils import escape

ENDINGS = {"wake": "#2a9d3a", "timer": "#7b4fc9", "timeout": "#d62728",
           "cancel": "#d62728", "close": "#8c564b"}
ENDING_WORDS = {"wake": "woken", "timer": "timer expired", "timeout": "timed out",
                "cancel": "cancelled", "close": "closed"}


def load(path):
    """The trace's events; a file cut short by a crash mid-write is mended first."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        cut = text.rstrip().rstrip(",")
        cut = cut[: cut.rfind("}") + 1] if "}" in cut else cut
        doc = json.loads(cut + "\n]}")
    return doc["traceEvents"] if isinstance(doc, dict) else doc


class Row:
    def __init__(self, key, label, kind):
        self.key, self.label, self.kind = key, label, kind
        self.spans = []     # (start, end, why)
        self.waits = []     # (start, end or None, op text, ending kind)
        self.marks = []     # (ts, kind, text)
        self.ops = []       # what it waited for, in order, for its label
        self.first = None


def build_rows(events):
    """Reactor rows and coroutine rows, in the order they first appear."""
    rows, order = {}, []
    names = {}

    def row(key, label, kind, ts):
        if key not in rows:
            rows[key] = Row(key, label, kind)
            order.append(key)
        r = rows[key]
        if r.first is None or ts < r.first:
            r.first = ts
        return r

    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[e.get("tid")] = e.get("args", {}).get("name", "reactor")
    open_span, open_wait = {}, {}
    for e in events:
        ph, ts = e.get("ph"), e.get("ts", 0.0)
        args = e.get("args", {}) or {}
        if e.get("cat") == "coroutine":
            rid = e.get("id")
            tid = e.get("tid")
            number = str(rid).split(".")[-1]
            r = row(("c", rid), "coroutine %s" % number, "coroutine", ts)
            r.reactor = tid
            if ph == "b":
                open_span[rid] = ts
            elif ph == "e" and rid in open_span:
                r.spans.append((open_span.pop(rid), ts))
            elif ph == "n":
                kind = args.get("event")
                if kind == "wait":
                    op = args.get("op", "?")
                    text = op + (" fd %s" % args["fd"] if "fd" in args else "")
                    open_wait[rid] = (ts, text)
                    if text not in r.ops:
                        r.ops.append(text)
                elif kind in ENDINGS:
                    start, text = open_wait.pop(rid, (None, ""))
                    if start is not None:
                        r.waits.append((start, ts, text, kind))
                    r.marks.append((ts, kind, e.get("name", kind)))
        elif ph == "X" and e.get("name") == "epoll_wait":
            tid = e.get("tid")
            r = row(("r", tid), names.get(tid, "reactor %s" % tid), "reactor", ts)
            r.reactor = tid
            r.spans.append((ts, ts + e.get("dur", 0.0)))
            r.marks.append((ts, "poll", "epoll_wait: %s event(s), timeout %s ms" %
                            (args.get("events"), args.get("timeout_ms"))))
        elif ph == "i":
            tid = e.get("tid")
            r = row(("r", tid), names.get(tid, "reactor %s" % tid), "reactor", ts)
            r.reactor = tid
            r.marks.append((ts, "fd", "epoll reports " + e.get("name", "")))
        elif ph == "X":
            tid = e.get("tid")
            r = row(("r", tid), names.get(tid, "reactor %s" % tid), "reactor", ts)
            r.reactor = tid
    last = max((e.get("ts", 0.0) + e.get("dur", 0.0) for e in events if "ts" in e),
               default=0.0)
    for rid, (start, text) in open_wait.items():  # still waiting when the trace ends
        rows[("c", rid)].waits.append((start, None, text, None))
    for rid, start in open_span.items():
        rows[("c", rid)].spans.append((start, last))
    # Each reactor first, its coroutines below it in the order they appeared.
    reactors = [k for k in order if rows[k].kind == "reactor"]
    result = []
    for k in reactors:
        result.append(rows[k])
        result += [rows[c] for c in order
                   if rows[c].kind == "coroutine" and rows[c].reactor == rows[k].reactor]
    result += [rows[c] for c in order
               if rows[c] not in result]
    return result, last


class TimeMap:
    """Microseconds to x, with the idle stretches longer than `gap` cut to `gap_px`: those
    between two events where no coroutine runs."""

    def __init__(self, times, busy, start, end, width, gap, gap_px, linear):
        times = sorted(t for t in times if start <= t <= end)
        if not times or times[0] > start:
            times.insert(0, start)
        if times[-1] < end:
            times.append(end)
        self.breaks = []  # (t0, t1): cut stretches
        busy = sorted(busy)
        if not linear:
            for a, b in zip(times, times[1:]):
                if b - a > gap and not any(s < b and e > a for s, e in busy):
                    self.breaks.append((a, b))
        busy = (end - start) - sum(b - a for a, b in self.breaks)
        room = max(width - gap_px * len(self.breaks), width * 0.2)
        self.scale = room / busy if busy > 0 else 1.0
        self.start, self.end, self.gap_px = start, end, gap_px

    def x(self, t):
        t = min(max(t, self.start), self.end)
        x = (t - self.start) * self.scale
        for a, b in self.breaks:
            if t >= b:
                x += self.gap_px - (b - a) * self.scale
            elif t > a:
                x += self.gap_px * (t - a) / (b - a) - (t - a) * self.scale
        return x


def duration(us):
    if us >= 1e6:
        return "%.2f s" % (us / 1e6)
    if us >= 1e3:
        return "%.2f ms" % (us / 1e3)
    return "%.1f µs" % us


def tick_label(us, step):
    """A tick's time, with as many decimals as its step needs to tell it from the next."""
    unit, scale = ("s", 1e6) if us >= 1e6 else ("ms", 1e3) if us >= 1e3 else ("µs", 1.0)
    decimals = 0
    while step / scale * 10 ** decimals < 1 and decimals < 6:
        decimals += 1
    return "%.*f %s" % (decimals, us / scale, unit)


def nice_step(span):
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5,
                 2e5, 5e5, 1e6, 2e6, 5e6, 1e7):
        if span / step <= 8:
            return step
    return 1e7


def render(events, title, width, start_ms, length_ms, linear, gap_us):
    rows, last = build_rows(events)
    stamps = [e["ts"] for e in events if "ts" in e and e.get("ph") != "M"]
    if not stamps:
        raise SystemExit("trace_to_svg: the trace holds no events")
    t0 = min(stamps) + (start_ms or 0) * 1e3
    t1 = t0 + length_ms * 1e3 if length_ms else last
    # Rows that show nothing in the window are left out.

    def shows(r):
        return (any(a <= t1 and b >= t0 for a, b in r.spans) or
                any(a <= t1 and (b is None or b >= t0) for a, b, _, _ in r.waits) or
                any(t0 <= m[0] <= t1 for m in r.marks))
    rows = [r for r in rows if shows(r)]
    label_w, row_h, top = 270, 34, 58
    plot_w = width - label_w - 20
    times = [t for r in rows for a, b in r.spans for t in (a, b)]
    times += [t for r in rows for a, b, _, _ in r.waits for t in (a, b) if t is not None]
    times += [m[0] for r in rows for m in r.marks]
    busy = [(a, b) for r in rows if r.kind == "coroutine" for a, b in r.spans]
    tm = TimeMap(times, busy, t0, t1, plot_w, gap_us, 110, linear)
    height = top + row_h * len(rows) + 82
    out = []
    w = out.append
    w('<?xml version="1.0" encoding="UTF-8"?>')
    w('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
      'font-family="sans-serif" font-size="12">' % (width, height, width, height))
    w('<rect width="100%" height="100%" fill="white"/>')
    w('<text x="10" y="20" font-size="15" font-weight="bold">%s</text>' % escape(title))
    w('<text x="10" y="38" fill="#555">%s shown; %d rows (one per reactor, one per coroutine)'
      '%s</text>' % (duration(t1 - t0), len(rows),
                     "" if linear or not tm.breaks else
                     "; idle stretches cut short, marked ≈"))

    def X(t):
        return label_w + tm.x(t)
    # Time axis: ticks within each stretch drawn to scale, and a mark at each cut.
    axis_y = top - 6
    step = nice_step(plot_w / tm.scale / 1.0) if tm.scale else 1e6
    segments, s = [], t0
    for a, b in tm.breaks:
        segments.append((s, a))
        s = b
    segments.append((s, t1))
    w('<g class="axis" fill="#555" font-size="10">')
    last_x = -1e9
    for a, b in segments:  # ticks at round times since the picture's start
        k = int((a - t0) // step) + 1
        while t0 + k * step <= b:
            x = X(t0 + k * step)
            if x - last_x > 48:
                w('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ccc"/>'
                  % (x, axis_y, x, top + row_h * len(rows)))
                w('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                  % (x, axis_y - 3, tick_label(k * step, step)))
                last_x = x
            k += 1
    for a, b in tm.breaks:
        xa, xb = X(a), X(b)
        w('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#f4f4f4"/>'
          % (xa, top, xb - xa, row_h * len(rows)))
        w('<text x="%.1f" y="%d" text-anchor="middle" fill="#888">≈%s</text>'
          % ((xa + xb) / 2, top + row_h * len(rows) + 14, duration(b - a)))
    w('</g>')
    for i, r in enumerate(rows):
        y = top + i * row_h
        cls = "row coroutine" if r.kind == "coroutine" else "row reactor"
        w('<g class="%s">' % cls)
        if i % 2:
            w('<rect x="0" y="%d" width="%d" height="%d" fill="#fafafa"/>'
              % (y, width, row_h))
        label = r.label
        if r.kind == "coroutine" and r.ops:
            label += ": " + ", ".join(r.ops[:3]) + ("…" if len(r.ops) > 3 else "")
        weight = ' font-weight="bold"' if r.kind == "reactor" else ""
        if len(label) > 40:
            label = label[:39] + "…"
        w('<text x="8" y="%d"%s>%s<title>%s</title></text>'
          % (y + 17, weight, escape(label), escape(r.label + ": " + ", ".join(r.ops))))
        mid = y + row_h / 2
        if r.kind == "reactor":
            for a, b in r.spans:
                if b < t0 or a > t1:
                    continue
                xa, xb = X(a), X(b)
                w('<rect x="%.1f" y="%.1f" width="%.1f" height="8" fill="#c8c8c8">'
                  '<title>epoll_wait: %s</title></rect>'
                  % (xa, mid - 4, max(xb - xa, 1.0), duration(b - a)))
            for t, kind, text in r.marks:
                if kind == "fd" and t0 <= t <= t1:
                    w('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333">'
                      '<title>%s</title></line>' % (X(t), mid - 8, X(t), mid + 8, escape(text)))
        for a, b, text, kind in r.waits:
            if (b is not None and b < t0) or a > t1:
                continue
            xa, xb = X(a), X(b if b is not None else t1)
            # Coloured by what ended it, where that is in the picture.
            colour = ENDINGS.get(kind, "#999") if b is not None and b <= t1 else "#999"
            w('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" '
              'stroke-dasharray="4 3"><title>%s: waits %s%s</title></line>'
              % (xa, mid, xb, mid, colour, escape(text),
                 duration((b if b is not None else t1) - a),
                 ", then " + ENDING_WORDS[kind] if kind else ", still waiting"))
            if xb - xa > 6 * len(text) + 10:
                w('<text x="%.1f" y="%.1f" font-size="10" fill="%s">%s</text>'
                  % (xa + 4, mid - 9, colour, escape(text)))
        if r.kind == "coroutine":
            for a, b in r.spans:
                if b < t0 or a > t1:
                    continue
                xa, xb = X(a), X(b)
                w('<rect x="%.1f" y="%.1f" width="%.1f" height="14" rx="2" fill="#1f77b4">'
                  '<title>runs %s</title></rect>'
                  % (xa, mid - 7, max(xb - xa, 2.0), duration(b - a)))
            for t, kind, text in r.marks:
                if not t0 <= t <= t1 or kind not in ENDINGS:
                    continue
                x = X(t)
                w('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s at %s</title>'
                  '</circle>' % (x, mid, ENDINGS[kind], escape(text), duration(t - t0)))
        w('</g>')
    # Legend.
    y = top + row_h * len(rows) + 34
    items = [("rect", "#1f77b4", "a coroutine runs (resumed by the loop)"),
             ("dash", "#2a9d3a", "waits, then woken by its descriptor"),
             ("dash", "#999999", "waits past the picture's end"),
             ("dash", "#7b4fc9", "sleeps, timer expires"),
             ("dash", "#d62728", "times out or is cancelled"),
             ("rect", "#c8c8c8", "the reactor sleeps in epoll_wait")]
    x = 10
    for n, (shape, colour, text) in enumerate(items):
        if n == 3:
            x, y = 10, y + 18
        if shape == "rect":
            w('<rect x="%d" y="%d" width="16" height="10" fill="%s"/>' % (x, y - 9, colour))
        else:
            w('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" '
              'stroke-dasharray="4 3"/>' % (x, y - 4, x + 16, y - 4, colour))
        w('<text x="%d" y="%d">%s</text>' % (x + 21, y, escape(text)))
        x += 36 + 7 * len(text)
    w('</svg>')
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trace", help="the file CONET_TRACE named")
    p.add_argument("-o", "--output", help="the SVG to write (default: standard output)")
    p.add_argument("--title", help="the picture's title (default: the trace's program)")
    p.add_argument("--width", type=int, default=1100, help="pixels (default 1100)")
    p.add_argument("--start", type=float, default=0.0,
                   help="milliseconds after the first event where the picture begins")
    p.add_argument("--length", type=float, default=0.0,
                   help="milliseconds shown (default: to the end)")
    p.add_argument("--gap", type=float, default=1.0,
                   help="idle stretches longer than this many milliseconds are cut short")
    p.add_argument("--linear", action="store_true", help="time to scale: cut nothing short")
    a = p.parse_args()
    try:
        events = load(a.trace)
    except (OSError, ValueError, KeyError) as e:
        sys.exit("trace_to_svg: cannot read %s: %s" % (a.trace, e))
    title = a.title
    if not title:
        names = [e.get("args", {}).get("name") for e in events
                 if e.get("ph") == "M" and e.get("name") == "process_name"]
        title = (names[0] if names and names[0] else "conet") + ": the loop, coroutine by coroutine"
    svg = render(events, title, a.width, a.start, a.length, a.linear, a.gap * 1e3)
    if a.output:
        with open(a.output, "w", encoding="utf-8") as f:
            f.write(svg)
    else:
        sys.stdout.write(svg)


if __name__ == "__main__":
    main()
