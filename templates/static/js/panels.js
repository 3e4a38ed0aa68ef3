/* dinoclust panels: the cluster sizes of the current k. A sampled report (above a million rows,
   generator/streamed.py) counts every row in sizes_all: the bars show those, and say that the
   plot, grid and metrics are the sample's. */
(function () {
  "use strict";

  var ns = window.dinoclust, data = ns.data, u = ns.util;
  var sizesList = document.getElementById("sizes");
  var sizesText = document.getElementById("sizes-text");
  var t = u.t;

  function render(k, clustering) {
    var sizes = clustering.sizes_all || clustering.sizes;
    var n = sizes.reduce(function (a, b) { return a + b; }, 0);
    var largest = Math.max.apply(null, sizes);
    sizesList.textContent = "";
    sizes.forEach(function (size, cluster) {
      var row = u.el("li", "bar-row");
      row.setAttribute("data-cluster", String(cluster));
      row.setAttribute("data-size", String(size));
      // the row (its bar too) opens the cluster's grid; its name is the button keys reach
      var label = u.el("span", "bar-label");
      var open = label.appendChild(u.el("button", "bar-open", t("cluster_n", { c: cluster })));
      open.type = "button";
      open.title = t("legend_open", { c: cluster });
      var swatch = u.el("span", "swatch");
      swatch.style.background = u.colour(cluster);
      open.prepend(swatch);
      row.addEventListener("click", function () { ns.openCluster(cluster); });
      var track = u.el("span", "bar-track");
      var bar = u.el("span", "bar");
      bar.style.width = (largest ? (100 * size / largest) : 0) + "%";
      bar.style.background = u.colour(cluster);
      track.appendChild(bar);
      var pct = n ? Math.round(1000 * size / n) / 10 : 0;
      row.appendChild(label);
      row.appendChild(track);
      row.appendChild(u.el("span", "bar-value", u.num(size) + " (" + pct + " %)"));
      sizesList.appendChild(row);
    });
    var args = { k: k, sum: sizes.map(u.num).join(" + "), n: u.num(n) };
    if (clustering.sizes_all) {
      args.s = u.num(data.images.length);
      sizesText.textContent = t("sizes_text_all", args);
    } else {
      sizesText.textContent = t("sizes_text", args);
    }
  }

  // "showing M of N points" under the plot, when the 3D view draws a sample.
  function sampleNote() {
    var note = document.getElementById("plot-sample");
    if (!note) { return; }
    var m = data.sample.length, n = data.images.length;
    note.hidden = m >= n;
    if (m >= n) {
      note.textContent = "";
    } else if (data.sampled) {  // a sample of the sample: say both, and the whole
      note.textContent = t("plot_sample_sampled", { m: u.num(m), s: u.num(n), n: u.num(data.rows) });
    } else {
      note.textContent = t("plot_sample", { m: u.num(m), n: u.num(n) });
    }
  }

  // A table wider than its panel says that it scrolls (the hint sticks to the left edge).
  function markScrollers() {
    document.querySelectorAll(".table-scroll").forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      box.toggleAttribute("data-scrolls", scrolls);
      box.setAttribute("data-hint", scrolls ? t("table_scrolls") + " →" : "");
    });
  }

  ns.panels = { renderSizes: render, sampleNote: sampleNote, markScrollers: markScrollers };
})();
