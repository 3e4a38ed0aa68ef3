/* dinoclust 3D view: one trace of the display sample (payload: display_sample, the same for every
   k), coloured by numeric id through a discrete colour scale. Switching k restyles only the
   colours of that trace and the centres: positions and hover text are sent once. */
(function () {
  "use strict";

  var ns = window.dinoclust, data = ns.data, u = ns.util, state = ns.state;
  var i18n = window.dinoclustI18n;
  // Above DENSE points they are small squares: WebGL draws a circle marker as a glyph of many
  // triangles, a square as two, which makes redrawing 10,000 points ~1.6× faster in software
  // WebGL; at 3 px in a dense cloud the two look alike.
  var DENSE = 2000;
  var plotDiv = document.getElementById("plot");
  var legend = document.getElementById("plot-legend");
  var sample = data.sample;
  var drawn = sample.length;
  var ids = {};  // "k" or "label" → the drawn points' colour ids, made once each

  function scale(palette) {
    var stops = [];
    palette.forEach(function (c, i) { stops.push([i / palette.length, c], [(i + 1) / palette.length, c]); });
    return stops;
  }

  function byLabel() { return state.colourBy === "label" && data.labels; }
  function palette() { return byLabel() ? u.LABEL_PALETTE : u.PALETTE; }

  function colourIds(clustering) {
    var key = byLabel() ? "label" : String(clustering.sizes.length);
    if (ids[key]) { return ids[key]; }
    var source = byLabel() ? data.labelIndex : clustering.labels;
    var p = palette().length, out = new Array(drawn);
    for (var j = 0; j < drawn; j++) { out[j] = source[sample[j]] % p; }
    ids[key] = out;
    return out;
  }

  // The colour a point's id stands for (what the reader sees), e.g. for tests and the legend.
  function markerColour(id) { return palette()[id]; }

  var labelCounts = null;
  function entries(clustering) {
    if (byLabel()) {
      if (!labelCounts) {
        labelCounts = data.label_names.map(function () { return 0; });
        data.labelIndex.forEach(function (l) { labelCounts[l] += 1; });
      }
      return labelCounts.map(function (n, g) {
        var label = i18n.label(data.label_names[g]);
        return { name: label + " (" + n + ")", colour: u.labelColour(g), label: label };
      });
    }
    return clustering.sizes.map(function (n, g) {
      return { name: u.t("cluster_n", { c: g }) + " (" + u.num(n) + ")", colour: u.colour(g) };
    });
  }

  // A cluster's entry opens its grid; a label's finds its images (app.js, strips.js).
  function renderLegend(list) {
    legend.textContent = "";
    list.forEach(function (entry, g) {
      var item = legend.appendChild(u.el("li"));
      var button = item.appendChild(u.el("button", "legend-open", entry.name));
      button.type = "button";
      var swatch = u.el("span", "swatch");
      swatch.style.background = entry.colour;
      button.prepend(swatch);
      if (entry.label !== undefined) {
        button.title = u.t("legend_find", { l: entry.label });
        button.addEventListener("click", function () { ns.strips.find(entry.label); });
      } else {
        button.title = u.t("legend_open", { c: g });
        button.setAttribute("data-cluster", String(g));
        button.addEventListener("click", function () { ns.openCluster(g); });
      }
    });
    var centresItem = legend.appendChild(u.el("li", "centres", u.t("centres")));
    centresItem.prepend(u.el("span", "swatch diamond"));
  }

  function centres(clustering) {
    return {
      x: clustering.centers.map(function (c) { return c[0]; }),
      y: clustering.centers.map(function (c) { return c[1]; }),
      z: clustering.centers.map(function (c) { return c[2]; }),
      text: clustering.centers.map(function (c, i) { return u.t("centre_of", { c: i }); })
    };
  }

  function at(indices) {
    var ps = indices.map(data.point);
    return { x: ps.map(function (p) { return p[0]; }), y: ps.map(function (p) { return p[1]; }),
             z: ps.map(function (p) { return p[2]; }) };
  }

  function axisTitle(i) {
    var ratio = data.pca.explained_variance_ratio[i];
    var pct = ratio === undefined ? "n/a" : (100 * ratio).toFixed(1) + " %";
    return { text: u.t("pc_axis", { i: i + 1, pct: pct }) };
  }

  function marker(clustering) {
    var p = palette();
    return { color: colourIds(clustering), colorscale: scale(p), cmin: -0.5, cmax: p.length - 0.5,
             showscale: false };
  }

  // Five traces: the drawn images, the centres, the selected image, its neighbours, and the
  // images the find box matches.
  function traces(clustering) {
    var c = centres(clustering), s = at(state.selected === null ? [] : [state.selected]);
    var r = at(state.ringed || []), f = at(state.found || []);
    var xyz = [[], [], []], text = new Array(drawn);
    for (var j = 0; j < drawn; j++) {
      var i = sample[j];
      xyz[0].push(data.axes[0][i]); xyz[1].push(data.axes[1][i]); xyz[2].push(data.axes[2][i]);
      text[j] = u.plotText(data.images[i].path);
    }
    var dense = drawn > DENSE;
    var m = marker(clustering);
    m.size = dense ? 3 : 4;
    m.symbol = dense ? "square" : "circle";
    m.opacity = 0.85;
    m.line = { width: 0 };
    return [{
      type: "scatter3d", mode: "markers", name: "images", uid: "points", showlegend: false,
      x: xyz[0], y: xyz[1], z: xyz[2], text: text, hoverinfo: "none", marker: m
    }, {
      type: "scatter3d", mode: "markers", name: "Centres", uid: "centres", showlegend: false,
      x: c.x, y: c.y, z: c.z, text: c.text, hovertemplate: "%{text}<extra></extra>",
      // open diamonds: a cluster of one image keeps its point visible inside its centre
      marker: { size: 8, color: "#000000", symbol: "diamond-open", line: { width: 2 } }
    }, {
      type: "scatter3d", mode: "markers", name: "selected", uid: "selected", showlegend: false,
      x: s.x, y: s.y, z: s.z, hoverinfo: "skip",
      marker: { size: 12, color: "#E8A33D", symbol: "circle-open", line: { width: 3 } }
    }, {
      type: "scatter3d", mode: "markers", name: "neighbours", uid: "neighbours", showlegend: false,
      x: r.x, y: r.y, z: r.z, hoverinfo: "skip",
      marker: { size: 8, color: "#E8A33D", symbol: "circle-open", line: { width: 2 } }
    }, {
      type: "scatter3d", mode: "markers", name: "found", uid: "found", showlegend: false,
      x: f.x, y: f.y, z: f.z, hoverinfo: "skip",
      marker: { size: 11, color: "#000000", symbol: "circle-open", line: { width: 3 } }
    }];
  }

  function layout() {
    // a narrow plot (a phone) looks from farther away, so that PC3's title is not cut off
    var far = plotDiv.clientWidth < 560 ? 1.3 : 1;
    return {
      margin: { l: 0, r: 0, t: 0, b: 0 },
      uirevision: "keep-camera",
      showlegend: false,
      scene: {
        xaxis: { title: axisTitle(0) }, yaxis: { title: axisTitle(1) }, zaxis: { title: axisTitle(2) },
        aspectmode: "cube",
        // far enough that the axes stay in view
        camera: { eye: { x: 1.55 * far, y: 1.55 * far, z: 1.15 * far } }
      }
    };
  }

  // First draw (or a new language): a full plot. Otherwise one restyle: the points' colour ids
  // (and scale) and the centres; `undefined` leaves the other trace's attribute as it is.
  function render(clustering, onPlotted) {
    renderLegend(entries(clustering));
    if (typeof window.Plotly === "undefined") { return Promise.resolve(); }
    if (!state.plotted || state.plotLang !== state.lang) {
      var call = state.plotted ? window.Plotly.react : window.Plotly.newPlot;
      state.plotted = true;
      state.plotLang = state.lang;
      return call(plotDiv, traces(clustering), layout(), u.plotConfig({ responsive: true }))
        .then(onPlotted);
    }
    var c = centres(clustering), m = marker(clustering);
    return window.Plotly.restyle(plotDiv, {
      "marker.color": [m.color, undefined], "marker.colorscale": [m.colorscale, undefined],
      "marker.cmax": [m.cmax, undefined],
      x: [undefined, c.x], y: [undefined, c.y], z: [undefined, c.z], text: [undefined, c.text]
    }, [0, 1]);
  }

  function highlight(index) {
    state.selected = index;
    if (!state.plotted || typeof window.Plotly === "undefined") { return Promise.resolve(); }
    var s = at(index === null ? [] : [index]);
    return window.Plotly.restyle(plotDiv, { x: [s.x], y: [s.y], z: [s.z] }, [2]);
  }

  function ring(indices) {
    state.ringed = indices;
    if (!state.plotted || typeof window.Plotly === "undefined") { return Promise.resolve(); }
    var r = at(indices);
    return window.Plotly.restyle(plotDiv, { x: [r.x], y: [r.y], z: [r.z] }, [3]);
  }

  // The drawn images the find box matches (mask: a byte per image, or null): ringed in black,
  // RINGS at most (a ring is a glyph to draw: ringing 20,000 points took seconds in software
  // WebGL, and rings on every point show nothing). state.foundCapped says when some were left.
  var RINGS = 1000;
  function found(mask) {
    var indices = [];
    state.foundCapped = false;
    if (mask) {
      for (var j = 0; j < drawn; j++) {
        if (!mask[sample[j]]) { continue; }
        if (indices.length >= RINGS) { state.foundCapped = true; break; }
        indices.push(sample[j]);
      }
    }
    state.found = indices;
    if (!state.plotted || typeof window.Plotly === "undefined") { return Promise.resolve(); }
    var f = at(indices);
    return window.Plotly.restyle(plotDiv, { x: [f.x], y: [f.y], z: [f.z] }, [4]);
  }

  // The image behind a point of the first trace.
  function imageAt(pointNumber) { return sample[pointNumber]; }

  ns.plot = { render: render, highlight: highlight, ring: ring, found: found, imageAt: imageAt,
              markerColour: markerColour, div: plotDiv };
})();
