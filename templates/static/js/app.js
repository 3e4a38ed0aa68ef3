/* dinoclust page: switches between the precomputed clusterings and links the views. The views
   are their own files sharing window.dinoclust: data.js (decoded data), plot.js, grid.js,
   preview.js, panels.js; analysis.js, neighbours.js, clusterfiles.js and report.js register
   factories in window.dinoclustViews, each of which gets update(k, clustering). */
(function () {
  "use strict";

  var ns = window.dinoclust, data = ns.data, u = ns.util, state = ns.state;
  var i18n = window.dinoclustI18n;  // lang.js: the reader's language, UI strings, t()
  var ui = i18n.ui;
  var kValues = data.k_values;
  var kMin = kValues[0];
  var kMax = kValues[kValues.length - 1];
  var slider = document.getElementById("k-slider");
  var output = document.getElementById("k-value");
  var controls = slider.closest(".controls");
  var colourBy = document.getElementById("colour-by");
  var rendering = Promise.resolve();  // the last setK's drawing

  function clampK(k) {
    if (!isFinite(k)) { return kMin; }
    return Math.min(kMax, Math.max(kMin, Math.round(k)));
  }

  function kFromHash() {
    var match = /(?:^#|&)k=(\d+)/.exec(window.location.hash);
    return match ? clampK(parseInt(match[1], 10)) : null;
  }

  // Linked views: hover a drawn point → its thumbnail by the cursor; click → its image in the grid.
  var bound = false;
  function bindPlotEvents() {
    var plotDiv = ns.plot.div;
    if (bound || typeof plotDiv.on !== "function") { return; }
    bound = true;
    ns.preview.track(plotDiv);
    plotDiv.on("plotly_hover", function (event) {
      var point = event && event.points && event.points[0];
      if (point && point.curveNumber === 0) { ns.preview.showHover(ns.plot.imageAt(point.pointNumber)); }
      else { ns.preview.hideHover(); }
    });
    plotDiv.on("plotly_unhover", ns.preview.hideHover);
    // Plotly's 3D scene sends plotly_click from inside its render, and a restyle there renders
    // again, which sends the click again, without end (a stack overflow that broke the plot):
    // the grid and the ring follow once the render is done.
    plotDiv.on("plotly_click", function (event) {
      var point = event && event.points && event.points[0];
      if (!point || point.curveNumber !== 0) { return; }
      var index = ns.plot.imageAt(point.pointNumber);
      state.pending = new Promise(function (resolve) {
        window.setTimeout(function () { resolve(showInGrid(index)); }, 0);
      });
    });
  }

  // A cluster's full grid, from its strip, size bar or legend entry.
  function openCluster(cluster) { return ns.grid.open(cluster); }

  function showInGrid(index) {
    ns.grid.show(index);
    return ns.plot.highlight(index);
  }

  // The preview dialog for an image; its point is marked and the views add to the dialog.
  function openPreview(index) {
    var dialog = ns.preview.open(index);
    ns.grid.highlight(index);
    var hooks = views.map(function (view) { return view.preview ? view.preview(index, dialog) : null; });
    return Promise.all([ns.plot.highlight(index)].concat(hooks));
  }

  function writeHash(k) {
    var hash = "#k=" + k + (state.lang !== ui.lang ? "&lang=" + state.lang : "");
    // In a notebook (generator.show: an iframe srcdoc) there is no address to keep, and a hash
    // would resolve against the notebook's own address and navigate the frame away.
    if (window.location.protocol === "about:") { return; }
    if (window.location.hash === hash) { return; }
    try {
      window.history.replaceState(null, "", hash);
    } catch (e) {
      window.location.replace(hash);
    }
  }

  // Show k: its distances first (loaded once per k), then sizes, grid, plot and views. When
  // another k is asked for meanwhile, the latest wins and this one draws nothing.
  function setK(k) {
    k = clampK(k);
    slider.value = String(k);
    output.textContent = String(k);
    writeHash(k);
    if (state.k === k) { return rendering; }
    state.k = k;
    var clustering = data.clusterings[String(k)];
    rendering = ns.loadDistances(k).then(function () {
      if (state.k !== k) { return rendering; }
      state.shown = k;  // the k whose distances the grid, preview and downloads use
      document.body.setAttribute("data-k", String(k));
      ns.panels.renderSizes(k, clustering);
      ns.grid.render(k, clustering);
      ns.strips.render(k, clustering);
      var updates = views.map(function (view) { return view.update(k, clustering); });
      ns.panels.markScrollers();
      return Promise.all([ns.plot.render(clustering, bindPlotEvents)].concat(updates));
    });
    state.pending = rendering;
    return rendering;
  }

  // Switch language in place: template text, then everything the script wrote, redrawn.
  function setLang(lang) {
    if (lang === state.lang || !i18n.set(lang)) { return state.pending; }
    state.lang = lang;
    ns.grid.relabel();
    ns.panels.sampleNote();
    views.forEach(function (view) { if (view.relabel) { view.relabel(); } });
    var k = state.k;
    state.k = null;
    return setK(k);
  }

  // One similar image as a button (thumbnail, name, similarity) that opens its preview: the
  // preview's strip and the query's answer show them alike; each sets its own data-* attributes.
  function neighbourTile(index, similarity) {
    var image = data.images[index];
    var button = u.el("button", "neighbour");
    button.type = "button";
    button.title = u.t("neighbour_tip", { path: image.path, s: similarity.toFixed(2) });
    var img = u.el("img");
    img.src = image.thumb;
    img.alt = image.path;
    img.decoding = "async";
    img.setAttribute("data-index", String(index));
    button.appendChild(img);
    // the name (whole on hover or focus) and the cosine similarity, under the image
    button.appendChild(u.el("span", "neighbour-name", u.baseName(image.path)));
    button.appendChild(u.el("span", "neighbour-sim", u.t("neighbour_sim", { s: similarity.toFixed(2) })));
    button.addEventListener("click", function () { openPreview(index); });
    return button;
  }

  // Extra views (analysis.js …) registered a factory before this file runs; each gets update(k).
  var helpers = { el: u.el, colour: u.colour, plotText: u.plotText, state: state, t: u.t, num: u.num,
                  baseName: u.baseName, openPreview: openPreview, ringPoints: ns.plot.ring,
                  csvText: u.csvText, save: u.save, plotConfig: u.plotConfig,
                  neighbourTile: neighbourTile };
  var views = (window.dinoclustViews || []).map(function (make) { return make(data, helpers); });
  ns.grid.onOpen(openPreview);

  if (colourBy) {
    colourBy.addEventListener("change", function () {
      state.colourBy = colourBy.value;
      document.body.setAttribute("data-colour-by", state.colourBy);
      state.pending = rendering = ns.plot.render(data.clusterings[String(state.k)], bindPlotEvents);
    });
  }

  document.querySelectorAll(".lang-switch button").forEach(function (button) {
    button.addEventListener("click", function () { setLang(button.getAttribute("data-lang")); });
  });
  // Dragging the slider fires many input events: one k per animation frame, the latest.
  var frame = null;
  slider.addEventListener("input", function () {
    output.textContent = slider.value;
    if (frame !== null) { return; }
    state.pending = new Promise(function (resolve) {
      frame = window.requestAnimationFrame(function () {
        frame = null;
        resolve(setK(parseInt(slider.value, 10)));
      });
    });
  });
  window.addEventListener("hashchange", function () {
    var k = kFromHash();
    if (k !== null) { setK(k); }
  });
  // In a notebook's srcdoc frame a "#…" link resolves against the notebook's own address and
  // would load that into the frame: in-page links are followed here instead.
  if (window.location.protocol === "about:") {
    document.addEventListener("click", function (event) {
      var link = event.target && event.target.closest && event.target.closest('a[href^="#"]');
      if (!link) { return; }
      event.preventDefault();
      var href = link.getAttribute("href");
      var match = /(?:^#|&)k=(\d+)/.exec(href);
      var target = document.getElementById(href.slice(1));
      if (match) { setK(clampK(parseInt(match[1], 10))); } else if (target) { target.scrollIntoView(); }
    });
  }
  // ←/→ step k from anywhere nothing else takes keys; ↑/↓ only within the slider's controls
  // (the slider itself moves on its own), so that they still scroll the page elsewhere.
  document.addEventListener("keydown", function (event) {
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || ns.preview.isOpen() ||
        event.altKey || event.ctrlKey || event.metaKey) { return; }
    var inControls = controls && event.target && controls.contains(event.target);
    var up = event.key === "ArrowRight" || (inControls && event.key === "ArrowUp");
    var down = event.key === "ArrowLeft" || (inControls && event.key === "ArrowDown");
    if (up) { setK(state.k + 1); event.preventDefault(); }
    if (down) { setK(state.k - 1); event.preventDefault(); }
  });

  // Sticky parts (the 3D view, scroll targets) sit below the sticky controls, however tall they
  // wrap: their height is --controls-h.
  function controlsHeight() {
    document.documentElement.style.setProperty("--controls-h", controls.offsetHeight + "px");
  }
  controlsHeight();
  if (window.ResizeObserver) { new window.ResizeObserver(controlsHeight).observe(controls); }
  window.addEventListener("resize", ns.panels.markScrollers);
  document.querySelectorAll("details").forEach(function (d) {
    d.addEventListener("toggle", ns.panels.markScrollers);
  });

  // The other k's distances, one at a time once the page is ready: later switches need no load.
  function prefetch(ks) {
    if (!ks.length) { return; }
    ns.loadDistances(ks[0]).then(function () {
      window.setTimeout(function () { prefetch(ks.slice(1)); }, 0);
    }, function () { return null; });
  }

  ns.setK = setK;
  ns.setLang = setLang;
  ns.showInGrid = showInGrid;
  ns.openCluster = openCluster;
  ns.openPreview = openPreview;
  ns.markerColour = ns.plot.markerColour;
  ns.panels.sampleNote();
  Promise.resolve(setK(kFromHash() || kMin)).then(function () {
    state.ready = true;
    document.body.setAttribute("data-ready", "true");
    prefetch(kValues.filter(function (k) { return k !== state.k; }));
  });
})();
