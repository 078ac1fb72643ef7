// Runs inside headless Chromium, after Mermaid: renders every chart in window.CHARTS and
// writes what a reader would see (bars, their labels and places, the title, the axis ticks)
// and what Mermaid understood (its Gantt settings) as JSON into <pre id="results">.
// check_summaries.py judges it; this file only observes.
(async () => {
  const results = [];
  const done = (extra) => {
    const pre = document.createElement("pre");
    pre.id = "results";
    pre.textContent = JSON.stringify({ version: mermaid.version || null, results, ...extra });
    document.body.appendChild(pre);
  };
  try {
    mermaid.initialize({ startOnLoad: false, securityLevel: "strict", suppressErrorRendering: true });
    let i = 0;
    for (const chart of window.CHARTS) {
      i += 1;
      const r = { name: chart.name, error: null };
      results.push(r);
      try {
        // What Mermaid understood: its chart-level settings after parsing.
        const diagram = await mermaid.mermaidAPI.getDiagramFromText(chart.source);
        const db = diagram.db;
        const get = (f) => (typeof db[f] === "function" ? db[f]() : undefined);
        const links = get("getLinks");
        r.db = {
          type: diagram.type,
          title: get("getDiagramTitle"),
          accTitle: get("getAccTitle"),
          dateFormat: get("getDateFormat"),
          axisFormat: get("getAxisFormat"),
          excludes: get("getExcludes"),
          includes: get("getIncludes"),
          todayMarker: get("getTodayMarker"),
          tickInterval: get("getTickInterval") ?? null,
          weekday: get("getWeekday"),
          topAxis: get("topAxisEnabled"),
          inclusiveEndDates: get("endDatesAreInclusive"),
          links: links ? Object.keys(links instanceof Map ? Object.fromEntries(links) : links).length : 0,
          tasks: (get("getTasks") || []).length,
        };
        // What a reader sees.
        const { svg } = await mermaid.render("chart" + i, chart.source);
        const holder = document.createElement("div");
        document.body.appendChild(holder);
        holder.innerHTML = svg;
        const root = holder.querySelector("svg");
        const byId = (id) => [...root.querySelectorAll("[id]")].find((e) => e.id === id);
        r.errorBox = !!root.querySelector(".error-icon, .error-text");
        r.title = [...root.querySelectorAll(".titleText")].map((t) => t.textContent.trim());
        r.ticks = [...root.querySelectorAll(".grid .tick text")].map((t) => t.textContent.trim());
        r.bars = [...root.querySelectorAll("rect[id]")]
          .map((b) => ({ b, text: byId(b.id + "-text") }))
          .filter(({ text }) => text)
          .map(({ b, text }) => ({
            id: b.id,
            classes: b.getAttribute("class") || "",
            x: Number(b.getAttribute("x")),
            width: Number(b.getAttribute("width")),
            label: text.textContent.replace(/\s+/g, " ").trim(),
          }));
      } catch (e) {
        r.error = String((e && e.message) || e);
      }
    }
    done({});
  } catch (e) {
    done({ fatal: String((e && e.message) || e) });
  }
})();
