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
  var colourBy = document.getElementById("colour-by");
  var state = { k: null, plotted: false, ready: false, colourBy: "cluster" };
  var TYPICAL_SHARE = 0.2;  // per cluster of 3 or more: the closest fifth typical, farthest atypical
  var labelNames = data.label_names || [];
  var labelIndex = {};
  labelNames.forEach(function (name, i) { labelIndex[name] = i; });

  function colour(cluster) { return PALETTE[cluster % PALETTE.length]; }

  // Labels get Tol's "bright" scheme, so they are not mistaken for cluster colours.
  var LABEL_PALETTE = ["#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB"];
  function labelColour(i) { return LABEL_PALETTE[i % LABEL_PALETTE.length]; }

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

  // Duplicate groups → a badge per member, naming the other files in its tooltip.
  function duplicateBadges() {
    var badges = data.images.map(function () { return []; });
    var dup = data.duplicates || { exact: [], near: [] };
    [["exact", "identical", "byte-identical to "], ["near", "near-duplicate", "near-duplicate of "]]
      .forEach(function (kind) {
        dup[kind[0]].forEach(function (group) {
          group.forEach(function (index) {
            var others = group.filter(function (j) { return j !== index; })
              .map(function (j) { return data.images[j].path; });
            var badge = el("span", "badge dup-" + kind[0], kind[1]);
            badge.title = kind[2] + others.join(", ");
            badges[index].push(badge);
          });
        });
      });
    return badges;
  }
  var dupBadges = duplicateBadges();

  // One figure per image, made once; switching k only moves them between cluster groups.
  var figures = data.images.map(function (image, index) {
    var figure = el("figure", "thumb");
    var img = el("img");
    img.src = image.thumb;
    img.alt = image.path;
    img.title = image.path;
    var badges = el("span", "badges");
    dupBadges[index].forEach(function (badge) { badges.appendChild(badge); });
    if (dupBadges[index].length) { figure.setAttribute("data-duplicate", "true"); }
    img.loading = "lazy";
    img.decoding = "async";
    img.width = image.thumb_width;
    img.height = image.thumb_height;
    img.setAttribute("data-index", String(index));
    figure.appendChild(img);
    figure.appendChild(badges);
    figure.appendChild(el("figcaption", null, baseName(image.path)));
    return figure;
  });
  var roleBadges = figures.map(function (figure) {
    var badge = el("span", "badge role");
    figure.querySelector(".badges").prepend(badge);
    return badge;
  });

  // Members nearest their centre first; the closest fifth typical, the farthest fifth atypical.
  function markMembers(members, clustering) {
    members.sort(function (a, b) {
      return (clustering.distances[a] - clustering.distances[b]) || (a - b);
    });
    var marked = members.length >= 3 ? Math.max(1, Math.floor(members.length * TYPICAL_SHARE)) : 0;
    members.forEach(function (index, rank) {
      var role = rank < marked ? "typical" : (rank >= members.length - marked ? "atypical" : "");
      var figure = figures[index];
      var img = figure.firstChild;
      var distance = clustering.distances[index];
      var label = data.labels ? "\nlabel: " + data.labels[index] : "";
      img.title = data.images[index].path + label + "\ndistance to centre: " + distance.toFixed(3) +
        (role ? " (" + role + ")" : "");
      figure.setAttribute("data-distance", String(distance));
      roleBadges[index].textContent = role;
      roleBadges[index].className = "badge role" + (role ? " " + role : "");
      if (role) { figure.setAttribute("data-role", role); } else { figure.removeAttribute("data-role"); }
    });
    return members;
  }

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
    var members = clustering.sizes.map(function () { return []; });
    clustering.labels.forEach(function (cluster, index) { members[cluster].push(index); });
    members.forEach(function (indices, cluster) {
      markMembers(indices, clustering).forEach(function (index) {
        groups[cluster].lastChild.appendChild(figures[index]);
      });
    });
    grid.textContent = "";
    groups.forEach(function (group) { grid.appendChild(group); });
  }

  function axisTitle(i) {
    var ratio = data.pca.explained_variance_ratio[i];
    var pct = ratio === undefined ? "n/a" : (100 * ratio).toFixed(1) + " %";
    return { text: "PC" + (i + 1) + " (" + pct + ")" };
  }

  // Points grouped by cluster, or by known label when "colour by label" is chosen.
  function traces(clustering) {
    var byLabel = state.colourBy === "label" && data.labels;
    var groups = (byLabel ? labelNames : clustering.sizes).map(function () {
      return { x: [], y: [], z: [], text: [], customdata: [] };
    });
    clustering.labels.forEach(function (cluster, index) {
      var p = data.points[index];
      var t = groups[byLabel ? labelIndex[data.labels[index]] : cluster];
      t.x.push(p[0]); t.y.push(p[1]); t.z.push(p[2]);
      t.text.push(plotText(data.images[index].path));
      t.customdata.push([cluster, data.labels ? plotText(data.labels[index]) : ""]);
    });
    // User strings reach Plotly only as escaped data (text, customdata), never in a template.
    var hover = "%{text}<br>cluster %{customdata[0]}" +
      (data.labels ? " · label %{customdata[1]}" : "") + "<extra></extra>";
    var out = groups.map(function (t, g) {
      var name = byLabel ? labelNames[g] : "Cluster " + g;
      return {
        type: "scatter3d", mode: "markers", name: plotText(name) + " (" + t.x.length + ")",
        x: t.x, y: t.y, z: t.z, text: t.text, customdata: t.customdata,
        hovertemplate: hover,
        marker: { size: 4, color: byLabel ? labelColour(g) : colour(g), opacity: 0.85,
                  line: { width: 0 } }
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
    var updates = views.map(function (view) { return view.update(k, clustering); });
    return Promise.all([renderPlot(clustering)].concat(updates));
  }

  // Extra views (analysis.js) register a factory before this file runs; each gets update(k).
  var helpers = { el: el, colour: colour, plotText: plotText, state: state };
  var views = (window.dinoclustViews || []).map(function (make) { return make(data, helpers); });

  if (colourBy) {
    colourBy.addEventListener("change", function () {
      state.colourBy = colourBy.value;
      document.body.setAttribute("data-colour-by", state.colourBy);
      renderPlot(data.clusterings[String(state.k)]);
    });
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
