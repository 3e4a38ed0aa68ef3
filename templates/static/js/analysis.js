/* dinoclust analysis views: metric charts, the split Sankey, the label table and the CSV download.
   Registers a factory that app.js calls with the data object; update(k) follows the slider. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  // Titles and hints are the UI strings m_<key> and m_<key>_hint (templates/i18n.json).
  var METRICS = ["inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "balance",
                 "purity", "ari", "nmi"];
  var W = 220, H = 96, PAD = { l: 8, r: 8, t: 10, b: 18 };

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, String(attrs[key])); });
    return node;
  }

  function format(value) {
    if (value === null || value === undefined) { return "–"; }
    var abs = Math.abs(value);
    return abs >= 1000 ? value.toFixed(0) : abs >= 10 ? value.toFixed(1) : value.toFixed(3);
  }

  // One small line chart per metric: a dot per k, the current k highlighted, the suggested k ringed.
  function chart(data, key, h) {
    var el = h.el, title = h.t("m_" + key), hint = h.t("m_" + key + "_hint");
    var ks = data.k_values;
    var values = ks.map(function (k) { return data.clusterings[String(k)].metrics[key]; });
    var defined = values.filter(function (v) { return v !== null && v !== undefined; });
    var figure = el("figure", "metric-chart");
    figure.setAttribute("data-metric", key);
    var caption = el("figcaption", null, title);
    caption.appendChild(el("span", "hint", " · " + hint));
    figure.appendChild(caption);
    var root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": h.t("for_each_k", { m: title }) });
    var lo = Math.min.apply(null, defined), hi = Math.max.apply(null, defined);
    var span = hi - lo || 1;
    function x(i) { return PAD.l + (ks.length > 1 ? i * (W - PAD.l - PAD.r) / (ks.length - 1) : 0); }
    function y(v) { return PAD.t + (hi - v) / span * (H - PAD.t - PAD.b); }
    var line = [];
    values.forEach(function (v, i) { if (v !== null && v !== undefined) { line.push(x(i) + "," + y(v)); } });
    root.appendChild(svg("polyline", { points: line.join(" "), "class": "metric-line" }));
    var dots = {};
    values.forEach(function (v, i) {
      var k = ks[i];
      root.appendChild(svg("text", { x: x(i), y: H - 4, "class": "metric-tick" })).textContent = String(k);
      if (v === null || v === undefined) { return; }
      var dot = svg("circle", { cx: x(i), cy: y(v), r: 3, "data-k": k, "class": "metric-dot" });
      dot.appendChild(svg("title")).textContent = h.t("metric_at", { m: title, k: k, v: format(v) });
      if (k === data.suggested_k) { dot.classList.add("suggested"); }
      root.appendChild(dot);
      dots[k] = dot;
    });
    figure.appendChild(root);
    var value = el("div", "metric-value");
    figure.appendChild(value);
    return {
      node: figure,
      update: function (k) {
        Object.keys(dots).forEach(function (key2) {
          dots[key2].classList.toggle("current", Number(key2) === k);
          dots[key2].setAttribute("r", Number(key2) === k ? 5 : 3);
        });
        value.textContent = "k = " + k + ": " + format(data.clusterings[String(k)].metrics[key]);
      }
    };
  }

  // Label × cluster counts for the current k, with totals (labels are text, never markup).
  function labelTable(data, k, table, h) {
    var clustering = data.clusterings[String(k)];
    table.textContent = "";
    table.setAttribute("data-k", String(k));
    var head = h.el("tr");
    head.appendChild(h.el("th", null, h.t("label_cluster")));
    clustering.sizes.forEach(function (size, c) {
      var th = h.el("th", null, String(c));
      var swatch = h.el("span", "swatch");
      swatch.style.background = h.colour(c);
      th.prepend(swatch);
      th.scope = "col";
      head.appendChild(th);
    });
    head.appendChild(h.el("th", null, h.t("total")));
    table.appendChild(h.el("thead")).appendChild(head);
    var body = table.appendChild(h.el("tbody"));
    clustering.label_table.forEach(function (counts, row) {
      var tr = h.el("tr");
      var th = h.el("th", null, window.dinoclustI18n.label(data.label_names[row]));
      th.scope = "row";
      tr.appendChild(th);
      var best = Math.max.apply(null, counts);
      counts.forEach(function (n) { tr.appendChild(h.el("td", n && n === best ? "best" : null, String(n))); });
      tr.appendChild(h.el("td", "total", String(counts.reduce(function (a, b) { return a + b; }, 0))));
      body.appendChild(tr);
    });
    var foot = h.el("tr", "total");
    foot.appendChild(h.el("th", null, h.t("total")));
    clustering.sizes.forEach(function (size) { foot.appendChild(h.el("td", null, String(size))); });
    foot.appendChild(h.el("td", null, String(data.images.length)));
    table.appendChild(h.el("tfoot")).appendChild(foot);
  }

  // Sankey of k → k+1 (at the largest k: k−1 → k), from the precomputed flows.
  function sankey(data, k, div, h) {
    if (typeof window.Plotly === "undefined" || !div) { return Promise.resolve(); }
    var kMax = data.k_values[data.k_values.length - 1];
    var from = k < kMax ? k : k - 1;
    var before = data.clusterings[String(from)];
    var after = data.clusterings[String(from + 1)];
    if (!before || !after) { div.textContent = ""; return Promise.resolve(); }
    var labels = [], colours = [];
    before.sizes.forEach(function (n, c) { labels.push(h.t("sankey_node", { c: c, k: from, n: h.num(n) })); colours.push(h.colour(c)); });
    after.sizes.forEach(function (n, c) { labels.push(h.t("sankey_node", { c: c, k: from + 1, n: h.num(n) })); colours.push(h.colour(c)); });
    // Narrow (a phone): short node names, so that the two columns' names do not run together.
    var narrow = div.clientWidth < 560;
    if (narrow) {
      labels = before.sizes.map(function (n, c) { return c + ": " + h.num(n); })
        .concat(after.sizes.map(function (n, c) { return c + ": " + h.num(n); }));
    }
    var flows = before.flows_to_next;
    var trace = {
      type: "sankey", orientation: "h", arrangement: "fixed",
      node: { label: labels, color: colours, pad: 10, thickness: 14, line: { width: 0 } },
      link: {
        source: flows.map(function (f) { return f[0]; }),
        target: flows.map(function (f) { return before.sizes.length + f[1]; }),
        value: flows.map(function (f) { return f[2]; }),
        color: flows.map(function (f) { return h.colour(f[0]) + "66"; })
      }
    };
    div.setAttribute("data-from", String(from));
    // a row of at least 34 px per node of the larger column, so that the names do not overlap;
    // no mode bar: it covered the diagram, which has nothing to zoom
    var height = Math.max(320, 34 * after.sizes.length + 24);
    div.style.height = height + "px";
    return window.Plotly.react(div, [trace], { margin: { l: 4, r: 4, t: 8, b: 8 },
      font: { size: narrow ? 10 : 11 }, height: height },
      h.plotConfig({ displayModeBar: false, responsive: true, staticPlot: false }));
  }

  // The current k's assignments as CSV, made in the browser (the one guarded writer, util.csvText).
  function download(data, k, h) {
    var clustering = data.clusterings[String(k)];
    var header = ["path", "cluster", "distance_to_centre"].concat(data.labels ? ["label"] : []);
    var rows = [header];
    data.images.forEach(function (image, i) {
      var row = [image.path, clustering.labels[i], clustering.distances[i]];
      if (data.labels) { row.push(data.labels[i]); }
      rows.push(row);
    });
    h.save(h.csvText(rows), "assignments_k" + k + ".csv", "text/csv;charset=utf-8");
  }

  function make(data, h) {
    var charts = document.getElementById("metric-charts");
    var views = [];
    function build() {
      if (!charts) { return; }
      charts.textContent = "";
      views = [];
      METRICS.forEach(function (key) {
        var first = data.clusterings[String(data.k_values[0])].metrics;
        if (!(key in first)) { return; }
        var view = chart(data, key, h);
        charts.appendChild(view.node);
        views.push(view);
      });
    }
    build();
    var rows = document.querySelectorAll("#metrics-table tr[data-k]");
    var table = document.getElementById("label-table");
    var labelMetrics = document.getElementById("label-metrics");
    var sankeyDiv = document.getElementById("sankey");
    var button = document.getElementById("download-csv");
    var tableLink = document.getElementById("labels-table-link");
    if (button) { button.addEventListener("click", function () { download(data, h.state.shown, h); }); }
    return {
      relabel: build,
      update: function (k) {
        views.forEach(function (v) { v.update(k); });
        rows.forEach(function (row) { row.classList.toggle("current", row.getAttribute("data-k") === String(k)); });
        if (button) { button.textContent = h.t("download_csv", { k: k }); }
        if (tableLink) {
          tableLink.href = "tables/labels_k" + k + ".csv";
          tableLink.textContent = "tables/labels_k" + k + ".csv";
        }
        if (table && data.labels) {
          labelTable(data, k, table, h);
          var m = data.clusterings[String(k)].metrics;
          labelMetrics.textContent = h.t("label_metrics",
            { k: k, p: format(m.purity), a: format(m.ari), n: format(m.nmi), b: format(m.balance) });
        }
        return sankey(data, k, sankeyDiv, h);
      }
    };
  }

  window.dinoclustViews = (window.dinoclustViews || []).concat([make]);
})();
