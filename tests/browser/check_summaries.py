#!/usr/bin/env python3
"""The step summary as people see it: every Markdown snapshot (src/snapshots/*markdown*,
*summary*) through cmark-gfm (GitHub's Markdown parser), and every Mermaid block in it
rendered by a pinned Mermaid in headless Chromium, checked the way a reader would:

- tables keep their column counts and rows; the evidence stays inside its <details>; no digest
  is written whole but the one after the image;
- each chart parses and renders; its title, date and axis formats are ferry's and no other
  chart-level setting came from a name; every task line is a bar with its label; bars sit in
  time order (smoke checks after the rollouts, a rollback after what failed); every bar can be
  seen; the axis starts at 00:00 and its ticks read ever later times.

Chromium runs in a time zone half an hour off UTC, as a reader's may be. Nothing is skipped: a
missing Chromium, Mermaid or cmark-gfm is a failure (scripts/setup installs them).

Usage: check_summaries.py --mermaid path/to/mermaid.min.js [SNAPSHOT.snap ...]
Prints one line per failed check and ends with `N passed, M failed`; exits 1 on any failure.
"""

import argparse
import collections
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FULL_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Mermaid's defaults for the chart-level settings ferry never writes.
DEFAULTS = {
    "excludes": [],
    "includes": [],
    "todayMarker": "",
    "tickInterval": None,
    "weekday": "sunday",
    "topAxis": False,
    "inclusiveEndDates": False,
    "links": 0,
    "accTitle": "",
}
TIMEZONE = "America/St_Johns"  # UTC-03:30 (UTC-02:30 in summer)


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, where, what, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {where}: {what}" + (f" ({detail})" if detail else ""), flush=True)


def body_of(snap):
    """The snapshot's content, without insta's header."""
    text = Path(snap).read_text(encoding="utf-8")
    if text.startswith("---\n"):
        end = text.index("\n---\n", 4)
        text = text[end + 5 :]
    return text


def cells(row):
    """A table row's cells as GFM splits them: on every pipe not escaped by a backslash."""
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return re.split(r"(?<!\\)\|", row)


def check_markdown(name, md, tally):
    import cmarkgfm
    from cmarkgfm.cmark import Options

    rendered = cmarkgfm.github_flavored_markdown_to_html(md, options=Options.CMARK_OPT_UNSAFE)
    # Tables: every row as many cells as its header, every row still in the table.
    lines = md.split("\n")
    tables, current = [], []
    for line in lines + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    html_tables = re.findall(r"<table>.*?</table>", rendered, re.S)
    tally.check(name, "every table renders", len(html_tables) == len(tables),
                f"{len(html_tables)} of {len(tables)}")
    for t, (src, out) in enumerate(zip(tables, html_tables), 1):
        width = len(cells(src[0]))
        bad = [r for r in src[2:] if len(cells(r)) != width]
        tally.check(name, f"table {t} keeps its {width} columns in every row", not bad,
                    "; ".join(bad)[:300])
        rows = re.findall(r"<tr>(.*?)</tr>", out, re.S)
        tally.check(name, f"table {t} keeps its {len(src) - 2} rows", len(rows) == len(src) - 1,
                    f"{len(rows) - 1} rendered")
    # The evidence: folded away, all of it in one code block.
    m = re.search(r"Evidence \((\d+) line\(s\)\)", md)
    if m:
        det = re.search(r"<details>(.*?)</details>", rendered, re.S)
        pre = det and re.search(r"<pre[^>]*><code[^>]*>(.*?)</code></pre>", det.group(1), re.S)
        n = len(html.unescape(pre.group(1)).rstrip("\n").split("\n")) if pre else 0
        tally.check(name, "the evidence stays in its <details>, every line", n == int(m.group(1)),
                    f"{n} of {m.group(1)} lines")
    # Digests: short everywhere but once, after the image.
    text = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    whole = FULL_DIGEST.findall(text)
    on_digest_line = [d for d in whole if re.search(r"(^|\W)digest\W+" + d, text, re.M)]
    tally.check(name, "no digest written whole but the one after the image",
                len(whole) <= 1 and len(on_digest_line) == len(whole), ", ".join(whole)[:200])
    # The charts, as GitHub hands them to Mermaid.
    charts = [html.unescape(c) for c in re.findall(
        r'<pre lang="mermaid"><code>(.*?)</code></pre>|<pre><code class="language-mermaid">(.*?)</code></pre>',
        rendered, re.S) for c in c if c]
    tally.check(name, "every mermaid block reaches the renderer",
                len(charts) == md.count("```mermaid"), f"{len(charts)} of {md.count('```mermaid')}")
    return charts


def tasks_of(source):
    """The chart's header settings and each task line's (section, label, seconds)."""
    header, tasks, section = {}, [], None
    for line in source.split("\n")[1:]:
        s = line.strip()
        if not s:
            continue
        if section is None and not s.lower().startswith("section"):
            key, _, value = s.partition(" ")
            header[key] = value.strip()
        elif s.lower().startswith("section") and ":" not in s:
            section = s[len("section"):].strip()
        else:
            label, _, data = s.partition(":")
            secs = re.search(r"(\d+)s\s*$", data)
            tasks.append((section or "", " ".join(label.split()), int(secs.group(1)) if secs else 0))
    return header, tasks


def elapsed(tick):
    return tuple(int(n) for n in re.findall(r"\d+", tick))


def check_chart(where, source, seen, tally):
    header, tasks = tasks_of(source)
    if seen.get("error"):
        tally.check(where, "parses and renders", False, seen["error"][:300])
        return
    tally.check(where, "parses and renders", not seen.get("errorBox"), "error box drawn")
    db = seen["db"]
    tally.check(where, "is a gantt chart", db["type"] == "gantt", db["type"])
    tally.check(where, "title is ferry's", db["title"] == header.get("title") == "Rollout timeline"
                and seen["title"] == ["Rollout timeline"], f"{db['title']!r} / {seen['title']}")
    for key in ("dateFormat", "axisFormat"):
        tally.check(where, f"{key} is ferry's", db[key] == header.get(key),
                    f"{db[key]!r}, written {header.get(key)!r}")
    changed = {k: db.get(k) for k, v in DEFAULTS.items() if db.get(k) not in (v, None)}
    tally.check(where, "no chart-level setting came from a name", not changed, str(changed)[:300])
    bars = seen["bars"]
    want = collections.Counter(label for _, label, _ in tasks)
    got = collections.Counter(b["label"] for b in bars)
    tally.check(where, f"every task line is a bar ({len(tasks)})",
                len(bars) == len(tasks) == db["tasks"], f"{len(bars)} bars, {db['tasks']} tasks")
    missing, extra = want - got, got - want
    tally.check(where, "every task label is drawn", not missing and not extra,
                f"missing {dict(missing)}, unexpected {dict(extra)}"[:300])
    # Time order, by the section each bar was written in.
    by_label = collections.defaultdict(list)
    for b in bars:
        by_label[b["label"]].append(b)
    kinds = collections.defaultdict(list)
    longest = max((secs for _, _, secs in tasks), default=0)
    thin = []
    for (section, label, secs) in tasks:
        if by_label[label]:
            b = by_label[label].pop(0)
            # A bar of at least 1% of the longest one is wide enough to see.
            if "milestone" not in b["classes"] and secs * 100 >= longest and not b["width"] > 0:
                thin.append(label)
            kind = ("smoke" if section.startswith("smoke") else "rollback" if section == "rollback"
                    else "during" if section.startswith("checks during") else "rollout")
            kinds[kind].append(b)
    milestone = lambda b: "milestone" in b["classes"]
    start = lambda b: b["x"] + b["width"] / 2 if milestone(b) else b["x"]
    end = lambda b: b["x"] + b["width"] / 2 if milestone(b) else b["x"] + b["width"]
    tally.check(where, "every bar can be seen", not thin, ", ".join(thin)[:200])
    rollout_end = max((end(b) for b in kinds["rollout"]), default=0)
    if kinds["smoke"]:
        first = min(start(b) for b in kinds["smoke"])
        tally.check(where, "smoke checks start after the rollouts", first >= rollout_end - 0.5,
                    f"smoke at x={first:.1f}, rollouts end at x={rollout_end:.1f}")
    if kinds["during"]:
        zero = min((start(b) for b in kinds["rollout"]), default=0)
        out = [b["label"] for b in kinds["during"] if not zero - 0.5 <= start(b) <= rollout_end]
        tally.check(where, "checks during a release sit within its rollout", not out, ", ".join(out))
    if kinds["rollback"]:
        failed = [b for b in kinds["smoke"] + kinds["rollout"] + kinds["during"] if "crit" in b["classes"]]
        after = max((end(b) for b in kinds["smoke"]), default=rollout_end)
        first = min(start(b) for b in kinds["rollback"])
        tally.check(where, "a rollback comes after what failed",
                    bool(failed) and first >= after - 0.5 and first >= rollout_end - 0.5,
                    f"rollback at x={first:.1f}, failure ends at x={after:.1f}")
    phases = [b for b in kinds["rollout"] if b["label"] in ("test traffic", "traffic shift", "bake")]
    tally.check(where, "blue/green phases in order",
                all(start(a) <= start(b) + 0.5 for a, b in zip(phases, phases[1:])))
    ticks = seen["ticks"]
    tally.check(where, "the axis starts at 00:00", bool(ticks) and ticks[0] in ("00:00", "day 1 00:00"),
                f"first tick {ticks[:1]}")
    steps = [elapsed(a) < elapsed(b) for a, b in zip(ticks, ticks[1:])]
    tally.check(where, "axis ticks read ever later times", bool(ticks) and all(steps),
                " ".join(ticks)[:200])


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mermaid", required=True, help="mermaid.min.js")
    ap.add_argument("--timeout", type=int, default=100)
    ap.add_argument("snapshots", nargs="*")
    args = ap.parse_args()
    tally = Tally()
    snaps = args.snapshots or sorted(
        str(p) for p in (ROOT / "src" / "snapshots").glob("*.snap")
        if re.search(r"markdown|summary", p.name))
    tally.check("setup", "snapshots to check", bool(snaps))
    mermaid_js = Path(args.mermaid)
    tally.check("setup", f"Mermaid at {mermaid_js}", mermaid_js.is_file())
    browser = chromium()
    tally.check("setup", "Chromium on PATH", browser is not None)
    try:
        import cmarkgfm  # noqa: F401
        have_gfm = True
    except ImportError:
        have_gfm = False
    tally.check("setup", "cmark-gfm (python3 -m pip install cmarkgfm)", have_gfm)
    if tally.failed:
        print(f"{tally.passed} passed, {tally.failed} failed")
        return 1
    charts = []
    for snap in snaps:
        name = Path(snap).name.removeprefix("ferry__render__tests__").removesuffix(".snap")
        for i, source in enumerate(check_markdown(name, body_of(snap), tally), 1):
            charts.append({"name": f"{name} chart {i}", "source": source})
    if charts:
        with tempfile.TemporaryDirectory(prefix="ferry-browser-") as tmp:
            page = Path(tmp) / "page.html"
            shutil.copy(mermaid_js, Path(tmp) / "mermaid.min.js")
            shutil.copy(HERE / "charts.js", Path(tmp) / "charts.js")
            data = json.dumps(charts).replace("</", "<\\/")
            page.write_text(
                '<!doctype html><meta charset="utf-8"><body>\n'
                '<script src="mermaid.min.js"></script>\n'
                f"<script>window.CHARTS = {data};</script>\n"
                '<script src="charts.js"></script>\n', encoding="utf-8")
            cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--allow-file-access-from-files", f"--user-data-dir={tmp}/profile",
                   "--virtual-time-budget=60000", "--dump-dom", page.as_uri()]
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                                     env={**os.environ, "TZ": TIMEZONE})
                dom, err = out.stdout, out.stderr
            except subprocess.TimeoutExpired:
                dom, err = "", f"Chromium did not finish within {args.timeout}s"
        m = re.search(r'<pre id="results">(.*?)</pre>', dom, re.S)
        tally.check("chromium", "the page reported its charts", bool(m), err.strip()[-500:])
        report = json.loads(html.unescape(m.group(1))) if m else {"results": []}
        tally.check("chromium", "Mermaid ran", not report.get("fatal"), report.get("fatal", ""))
        seen = {r["name"]: r for r in report["results"]}
        for c in charts:
            if c["name"] in seen:
                check_chart(c["name"], c["source"], seen[c["name"]], tally)
            else:
                tally.check(c["name"], "rendered", False, "no result from the page")
        print(f"{mermaid_js.name} in {browser} (TZ {TIMEZONE}): {len(charts)} chart(s) "
              f"from {len(snaps)} snapshot(s)")
    print(f"{tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
