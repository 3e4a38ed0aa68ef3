/* dinoclust page: reads the one inline data object and switches between precomputed clusterings. */
(function () {
  "use strict";

  // Paul Tol's "muted" scheme: distinguishable with the common colour-vision deficiencies.
  var PALETTE = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933",
                 "#DDCC77", "#CC6677", "#882255", "#AA4499", "#DDDDDD"];

  var data = JSON.parse(document.getElementById("dinoclust-data").textContent);
  var kValues = data.k_values;
  var kMin = kValues[0];
  var kMax = kValues[kValues.length - 1];
  var slider = document.getElementById("k-slider");
  var output = document.getElementById("k-value");
  var grid = document.getElementById("grid");
  var sizesList = document.getElementById("sizes");
  var sizesText = document.getElementById("sizes-text");
  var plotDiv = document.getElementById("plot");
  var state = { k: null, plotted: false, ready: false };

  function colour(cluster) { return PALETTE[cluster % PALETTE.length]; }

  function baseName(path) { return path.slice(path.lastIndexOf("/") + 1); }

  // Plotly reads a few HTML tags in hover text: show names as text, never as markup.
  function plotText(s) {
    return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function clampK(k) {
    if (!isFinite(k)) { return kMin; }
    return Math.min(kMax, Math.max(kMin, Math.round(k)));
  }

  function kFromHash() {
    var match = /(?:^#|&)k=(\d+)/.exec(window.location.hash);
    return match ? clampK(parseInt(match[1], 10)) : null;
  }

  // One figure per image, made once; switching k only moves them between cluster groups.
  var figures = data.images.map(function (image, index) {
    var figure = el("figure", "thumb");
    var img = el("img");
    img.src = image.thumb;
    img.alt = image.path;
    img.title = image.path;
    img.loading = "lazy";
    img.decoding = "async";
    img.width = image.thumb_width;
    img.height = image.thumb_height;
    img.setAttribute("data-index", String(index));
    figure.appendChild(img);
    figure.appendChild(el("figcaption", null, baseName(image.path)));
    return figure;
  });

  function renderSizes(k, clustering) {
    var n = data.images.length;
    var largest = Math.max.apply(null, clustering.sizes);
    sizesList.textContent = "";
    clustering.sizes.forEach(function (size, cluster) {
      var row = el("li", "bar-row");
      row.setAttribute("data-cluster", String(cluster));
      row.setAttribute("data-size", String(size));
      var label = el("span", "bar-label", "Cluster " + cluster);
      var swatch = el("span", "swatch");
      swatch.style.background = colour(cluster);
      label.prepend(swatch);
      var track = el("span", "bar-track");
      var bar = el("span", "bar");
      bar.style.width = (largest ? (100 * size / largest) : 0) + "%";
      bar.style.background = colour(cluster);
      track.appendChild(bar);
      var pct = n ? Math.round(1000 * size / n) / 10 : 0;
      row.appendChild(label);
      row.appendChild(track);
      row.appendChild(el("span", "bar-value", size + " (" + pct + " %)"));
      sizesList.appendChild(row);
    });
    sizesText.textContent = "k = " + k + ": " + clustering.sizes.join(" + ") + " = " + n + " images";
  }

  function renderGrid(clustering) {
    var groups = clustering.sizes.map(function (size, cluster) {
      var group = el("section", "cluster");
      group.setAttribute("data-cluster", String(cluster));
      var heading = el("h3", null, "Cluster " + cluster + " · " + size + (size === 1 ? " image" : " images"));
      var swatch = el("span", "swatch");
      swatch.style.background = colour(cluster);
      heading.prepend(swatch);
      group.appendChild(heading);
      group.appendChild(el("div", "thumbs"));
      return group;
    });
    clustering.labels.forEach(function (cluster, index) {
      groups[cluster].lastChild.appendChild(figures[index]);
    });
    grid.textContent = "";
    groups.forEach(function (group) { grid.appendChild(group); });
  }

  function axisTitle(i) {
    var ratio = data.pca.explained_variance_ratio[i];
    var pct = ratio === undefined ? "n/a" : (100 * ratio).toFixed(1) + " %";
    return { text: "PC" + (i + 1) + " (" + pct + ")" };
  }

  function traces(clustering) {
    var byCluster = clustering.sizes.map(function () { return { x: [], y: [], z: [], text: [] }; });
    clustering.labels.forEach(function (cluster, index) {
      var p = data.points[index];
      var t = byCluster[cluster];
      t.x.push(p[0]); t.y.push(p[1]); t.z.push(p[2]);
      t.text.push(plotText(data.images[index].path));
    });
    var out = byCluster.map(function (t, cluster) {
      return {
        type: "scatter3d", mode: "markers", name: "Cluster " + cluster + " (" + t.x.length + ")",
        x: t.x, y: t.y, z: t.z, text: t.text,
        hovertemplate: "%{text}<extra>cluster " + cluster + "</extra>",
        marker: { size: 4, color: colour(cluster), opacity: 0.85, line: { width: 0 } }
      };
    });
    out.push({
      type: "scatter3d", mode: "markers", name: "Centres",
      x: clustering.centers.map(function (c) { return c[0]; }),
      y: clustering.centers.map(function (c) { return c[1]; }),
      z: clustering.centers.map(function (c) { return c[2]; }),
      text: clustering.centers.map(function (c, i) { return "centre of cluster " + i; }),
      hovertemplate: "%{text}<extra></extra>",
      marker: { size: 7, color: "#000000", symbol: "diamond", line: { width: 0 } }
    });
    return out;
  }

  var layout = {
    margin: { l: 0, r: 0, t: 0, b: 0 },
    uirevision: "keep-camera",
    legend: { itemsizing: "constant", x: 0, y: 1, bgcolor: "rgba(255,255,255,0.7)" },
    scene: {
      xaxis: { title: axisTitle(0) }, yaxis: { title: axisTitle(1) }, zaxis: { title: axisTitle(2) },
      aspectmode: "cube",
      camera: { eye: { x: 1.55, y: 1.55, z: 1.15 } }  // far enough that the axes stay in view
    }
  };

  function renderPlot(clustering) {
    if (typeof window.Plotly === "undefined") { return Promise.resolve(); }
    var call = state.plotted ? window.Plotly.react : window.Plotly.newPlot;
    state.plotted = true;
    return call(plotDiv, traces(clustering), layout, { responsive: true, displaylogo: false });
  }

  function writeHash(k) {
    var hash = "#k=" + k;
    if (window.location.hash === hash) { return; }
    try {
      window.history.replaceState(null, "", hash);
    } catch (e) {
      window.location.replace(hash);
    }
  }

  function setK(k) {
    k = clampK(k);
    var clustering = data.clusterings[String(k)];
    slider.value = String(k);
    output.textContent = String(k);
    writeHash(k);
    if (state.k === k) { return Promise.resolve(); }
    state.k = k;
    document.body.setAttribute("data-k", String(k));
    renderSizes(k, clustering);
    renderGrid(clustering);
    return renderPlot(clustering);
  }

  slider.addEventListener("input", function () { setK(parseInt(slider.value, 10)); });
  window.addEventListener("hashchange", function () {
    var k = kFromHash();
    if (k !== null) { setK(k); }
  });
  document.addEventListener("keydown", function (event) {
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || event.altKey || event.ctrlKey || event.metaKey) { return; }
    if (event.key === "ArrowRight" || event.key === "ArrowUp") { setK(state.k + 1); event.preventDefault(); }
    if (event.key === "ArrowLeft" || event.key === "ArrowDown") { setK(state.k - 1); event.preventDefault(); }
  });

  window.dinoclust = { data: data, setK: setK, state: state };
  Promise.resolve(setK(kFromHash() || kMin)).then(function () {
    state.ready = true;
    document.body.setAttribute("data-ready", "true");
  });
})();
