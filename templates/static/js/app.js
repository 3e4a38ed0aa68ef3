/* dinoclust page: reads the inline data objects and switches between precomputed clusterings.
   Built for large collections: thumbnails are made only when shown (each cluster shows its first
   FIRST images and a "show more" button), and switching k restyles one points trace in place. */
(function () {
  "use strict";

  // Paul Tol's "muted" scheme: distinguishable with the common colour-vision deficiencies.
  var PALETTE = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933",
                 "#DDCC77", "#CC6677", "#882255", "#AA4499", "#DDDDDD"];
  var FIRST = 60;   // thumbnails shown per cluster before "show more"
  var MORE = 240;   // thumbnails added per "show more"
  // Above DENSE images the points are small squares: WebGL draws a circle marker as a glyph of
  // many triangles, a square as two, which makes redrawing 10,000 points ~1.6× faster in software
  // WebGL; at 3 px in a dense cloud the two look alike.
  var DENSE = 2000;

  var data = JSON.parse(document.getElementById("dinoclust-data").textContent);
  var i18n = window.dinoclustI18n;  // lang.js: the reader's language, UI strings, t()
  var ui = i18n.ui;
  var kValues = data.k_values;
  var kMin = kValues[0];
  var kMax = kValues[kValues.length - 1];
  var slider = document.getElementById("k-slider");
  var output = document.getElementById("k-value");
  var grid = document.getElementById("grid");
  var sizesList = document.getElementById("sizes");
  var sizesText = document.getElementById("sizes-text");
  var plotDiv = document.getElementById("plot");
  var legend = document.getElementById("plot-legend");
  var colourBy = document.getElementById("colour-by");
  var state = { k: null, plotted: false, plotLang: null, ready: false, colourBy: "cluster",
                lang: i18n.lang, selected: null, pending: Promise.resolve() };
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

  function t(key, args) { return i18n.t(key, args); }

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

  // Duplicate groups → per image, the kinds and the other files (badges are made with the figure).
  function duplicateInfo() {
    var info = data.images.map(function () { return []; });
    var dup = data.duplicates || { exact: [], near: [] };
    // Untrained features make nearly every pair look alike (the banner says so): no near badges.
    var kinds = [["exact", "identical", "identical_tip"]];
    if (!data.model.random_weights) { kinds.push(["near", "near_dup", "near_tip"]); }
    kinds.forEach(function (kind) {
      dup[kind[0]].forEach(function (group) {
        group.forEach(function (index) {
          var others = group.filter(function (j) { return j !== index; })
            .map(function (j) { return data.images[j].path; });
          info[index].push({ kind: kind, others: others });
        });
      });
    });
    return info;
  }
  var dupInfo = duplicateInfo();

  // A figure per image, made the first time it is shown; switching k only moves it.
  var figures = [];
  function figureFor(index) {
    if (figures[index]) { return figures[index]; }
    var image = data.images[index];
    var figure = el("figure", "thumb");
    figure.setAttribute("data-image", String(index));
    var open = el("button", "thumb-open");
    open.type = "button";
    var img = el("img");
    img.src = image.thumb;
    img.alt = image.path;
    img.loading = "lazy";
    img.decoding = "async";
    img.width = image.thumb_width;
    img.height = image.thumb_height;
    img.setAttribute("data-index", String(index));
    open.appendChild(img);
    open.addEventListener("click", function () { openPreview(index); });
    var badges = el("span", "badges");
    badges.appendChild(el("span", "badge role"));
    dupInfo[index].forEach(function (d) {
      var badge = el("span", "badge dup-" + d.kind[0], t(d.kind[1]));
      badge.title = t(d.kind[2], { files: d.others.join(", ") });
      badges.appendChild(badge);
    });
    if (dupInfo[index].length) { figure.setAttribute("data-duplicate", "true"); }
    figure.appendChild(open);
    figure.appendChild(badges);
    figure.appendChild(el("figcaption", null, baseName(image.path)));
    figures[index] = figure;
    return figure;
  }

  // Per k: each cluster's members nearest the centre first, and each image's role (memoised).
  var arrangements = {};
  function arrange(k, clustering) {
    if (arrangements[k]) { return arrangements[k]; }
    var members = clustering.sizes.map(function () { return []; });
    clustering.labels.forEach(function (cluster, index) { members[cluster].push(index); });
    var roles = new Array(data.images.length);
    var rank = new Array(data.images.length);
    members.forEach(function (list) {
      list.sort(function (a, b) { return (clustering.distances[a] - clustering.distances[b]) || (a - b); });
      var marked = list.length >= 3 ? Math.max(1, Math.floor(list.length * TYPICAL_SHARE)) : 0;
      list.forEach(function (index, r) {
        roles[index] = r < marked ? "typical" : (r >= list.length - marked ? "atypical" : "");
        rank[index] = r;
      });
    });
    arrangements[k] = { members: members, roles: roles, rank: rank };
    return arrangements[k];
  }

  // What a figure says for the current k: its role badge and its tooltip.
  function decorate(index, clustering, role) {
    var figure = figureFor(index);
    var img = figure.querySelector("img");
    var distance = clustering.distances[index];
    var label = data.labels ? "\n" + t("label") + ": " + i18n.label(data.labels[index]) : "";
    img.title = data.images[index].path + label + "\n" + t("distance") + ": " + distance.toFixed(3) +
      (role ? " (" + t(role) + ")" : "");
    figure.setAttribute("data-distance", String(distance));
    var badge = figure.querySelector(".badge.role");
    badge.textContent = role ? t(role) : "";
    badge.className = "badge role" + (role ? " " + role : "");
    if (role) { figure.setAttribute("data-role", role); } else { figure.removeAttribute("data-role"); }
    return figure;
  }

  function renderSizes(k, clustering) {
    var n = data.images.length;
    var largest = Math.max.apply(null, clustering.sizes);
    sizesList.textContent = "";
    clustering.sizes.forEach(function (size, cluster) {
      var row = el("li", "bar-row");
      row.setAttribute("data-cluster", String(cluster));
      row.setAttribute("data-size", String(size));
      var label = el("span", "bar-label", t("cluster_n", { c: cluster }));
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
    sizesText.textContent = t("sizes_text", { k: k, sum: clustering.sizes.join(" + "), n: n });
  }

  // The grid: a section per cluster showing its first images; "show more" adds the next ones.
  var groups = [];
  function renderGrid(k, clustering) {
    var arranged = arrange(k, clustering);
    groups = clustering.sizes.map(function (size, cluster) {
      var section = el("section", "cluster");
      section.setAttribute("data-cluster", String(cluster));
      var heading = el("h3", null, size === 1 ? t("cluster_heading_one", { c: cluster })
        : size === 0 ? t("cluster_heading_empty", { c: cluster })
        : t("cluster_heading", { c: cluster, n: size }));
      var swatch = el("span", "swatch");
      swatch.style.background = colour(cluster);
      heading.prepend(swatch);
      section.appendChild(heading);
      var thumbs = section.appendChild(el("div", "thumbs"));
      var more = section.appendChild(el("button", "show-more"));
      more.type = "button";
      var group = { section: section, thumbs: thumbs, more: more, shown: 0,
                    members: arranged.members[cluster] };
      more.addEventListener("click", function () { reveal(group, group.shown + MORE, clustering, arranged); });
      reveal(group, FIRST, clustering, arranged);
      return group;
    });
    grid.textContent = "";
    groups.forEach(function (group) { grid.appendChild(group.section); });
  }

  function reveal(group, count, clustering, arranged) {
    var upTo = Math.min(count, group.members.length);
    var fragment = document.createDocumentFragment();
    for (var r = group.shown; r < upTo; r++) {
      var index = group.members[r];
      fragment.appendChild(decorate(index, clustering, arranged.roles[index]));
    }
    group.thumbs.appendChild(fragment);
    group.shown = upTo;
    var left = group.members.length - upTo;
    group.more.hidden = left <= 0;
    group.more.textContent = t("show_more", { n: Math.min(left, MORE) });
  }

  function axisTitle(i) {
    var ratio = data.pca.explained_variance_ratio[i];
    var pct = ratio === undefined ? "n/a" : (100 * ratio).toFixed(1) + " %";
    return { text: t("pc_axis", { i: i + 1, pct: pct }) };
  }

  // Colour, hover data and legend entries of the points, for the clustering or the known labels.
  function pointStyle(clustering) {
    var byLabel = state.colourBy === "label" && data.labels;
    var colours = clustering.labels.map(function (cluster, index) {
      return byLabel ? labelColour(labelIndex[data.labels[index]]) : colour(cluster);
    });
    var custom = clustering.labels.map(function (cluster, index) {
      return [cluster, data.labels ? plotText(i18n.label(data.labels[index])) : ""];
    });
    var counts = (byLabel ? labelNames : clustering.sizes).map(function () { return 0; });
    clustering.labels.forEach(function (cluster, index) {
      counts[byLabel ? labelIndex[data.labels[index]] : cluster] += 1;
    });
    var entries = counts.map(function (n, g) {
      return { name: (byLabel ? i18n.label(labelNames[g]) : t("cluster_n", { c: g })) + " (" + n + ")",
               colour: byLabel ? labelColour(g) : colour(g) };
    });
    return { colours: colours, custom: custom, entries: entries };
  }

  function centres(clustering) {
    return {
      x: clustering.centers.map(function (c) { return c[0]; }),
      y: clustering.centers.map(function (c) { return c[1]; }),
      z: clustering.centers.map(function (c) { return c[2]; }),
      text: clustering.centers.map(function (c, i) { return t("centre_of", { c: i }); })
    };
  }

  function selectedPoint() {
    var p = state.selected === null ? null : data.points[state.selected];
    return p ? { x: [p[0]], y: [p[1]], z: [p[2]] } : { x: [], y: [], z: [] };
  }

  // The neighbours of the previewed image (neighbours.js), ringed in the plot.
  function ringedPoints() {
    var ps = (state.ringed || []).map(function (i) { return data.points[i]; });
    return { x: ps.map(function (p) { return p[0]; }), y: ps.map(function (p) { return p[1]; }),
             z: ps.map(function (p) { return p[2]; }) };
  }

  // Four traces: every image (one trace, coloured per point), the centres, the selected image and
  // its neighbours.
  function traces(clustering, style) {
    var c = centres(clustering);
    var s = selectedPoint();
    var r = ringedPoints();
    var dense = data.images.length > DENSE;
    return [{
      type: "scatter3d", mode: "markers", name: "images", uid: "points", showlegend: false,
      x: data.points.map(function (p) { return p[0]; }),
      y: data.points.map(function (p) { return p[1]; }),
      z: data.points.map(function (p) { return p[2]; }),
      text: data.images.map(function (image) { return plotText(image.path); }),
      customdata: style.custom, hoverinfo: "none",
      marker: { size: dense ? 3 : 4, symbol: dense ? "square" : "circle", color: style.colours,
                opacity: 0.85, line: { width: 0 } }
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
    }];
  }

  function layout() {
    return {
      margin: { l: 0, r: 0, t: 0, b: 0 },
      uirevision: "keep-camera",
      showlegend: false,
      scene: {
        xaxis: { title: axisTitle(0) }, yaxis: { title: axisTitle(1) }, zaxis: { title: axisTitle(2) },
        aspectmode: "cube",
        camera: { eye: { x: 1.55, y: 1.55, z: 1.15 } }  // far enough that the axes stay in view
      }
    };
  }

  function renderLegend(entries) {
    legend.textContent = "";
    entries.concat([{ name: t("centres"), centres: true }]).forEach(function (entry) {
      var item = el("li", entry.centres ? "centres" : null, entry.name);
      var swatch = el("span", entry.centres ? "swatch diamond" : "swatch");
      if (!entry.centres) { swatch.style.background = entry.colour; }
      item.prepend(swatch);
      legend.appendChild(item);
    });
  }

  // First draw (or a new language): a full plot; otherwise restyle the points and centres in place.
  function renderPlot(clustering) {
    var style = pointStyle(clustering);
    renderLegend(style.entries);
    if (typeof window.Plotly === "undefined") { return Promise.resolve(); }
    if (!state.plotted || state.plotLang !== state.lang) {
      var call = state.plotted ? window.Plotly.react : window.Plotly.newPlot;
      state.plotted = true;
      state.plotLang = state.lang;
      return call(plotDiv, traces(clustering, style), layout(), { responsive: true, displaylogo: false })
        .then(bindPlotEvents);
    }
    // One restyle for both traces: each call recomputes the whole 3D scene (≈ 0.3 s at 10,000).
    var c = centres(clustering);
    var points = plotDiv.data[0];
    return window.Plotly.restyle(plotDiv, {
      "marker.color": [style.colours, "#000000"], customdata: [style.custom, null],
      x: [points.x, c.x], y: [points.y, c.y], z: [points.z, c.z], text: [points.text, c.text]
    }, [0, 1]);
  }

  function highlightPoint(index) {
    state.selected = index;
    if (!state.plotted || typeof window.Plotly === "undefined") { return Promise.resolve(); }
    var s = selectedPoint();
    return window.Plotly.restyle(plotDiv, { x: [s.x], y: [s.y], z: [s.z] }, [2]);
  }

  function ringPoints(indices) {
    state.ringed = indices;
    if (!state.plotted || typeof window.Plotly === "undefined") { return Promise.resolve(); }
    var r = ringedPoints();
    return window.Plotly.restyle(plotDiv, { x: [r.x], y: [r.y], z: [r.z] }, [3]);
  }

  // Linked views: hover a point → its thumbnail by the cursor; click → its image in the grid.
  var mouse = { x: 0, y: 0 };
  var hoverBox = null;
  var bound = false;
  function bindPlotEvents() {
    if (bound || typeof plotDiv.on !== "function") { return; }
    bound = true;
    plotDiv.addEventListener("mousemove", function (event) { mouse.x = event.clientX; mouse.y = event.clientY; });
    plotDiv.on("plotly_hover", function (event) {
      var point = event && event.points && event.points[0];
      if (point && point.curveNumber === 0) { showHover(point.pointNumber); } else { hideHover(); }
    });
    plotDiv.on("plotly_unhover", hideHover);
    plotDiv.on("plotly_click", function (event) {
      var point = event && event.points && event.points[0];
      if (point && point.curveNumber === 0) { showInGrid(point.pointNumber); }
    });
  }

  function showHover(index) {
    if (!hoverBox) {
      hoverBox = document.body.appendChild(el("div", "hover-thumb"));
      hoverBox.setAttribute("aria-hidden", "true");
      hoverBox.appendChild(el("img"));
      hoverBox.appendChild(el("span", "hover-name"));
      hoverBox.appendChild(el("span", "hover-cluster"));
    }
    var image = data.images[index];
    var img = hoverBox.firstChild;
    img.src = image.thumb;
    img.alt = image.path;
    img.setAttribute("data-index", String(index));
    hoverBox.querySelector(".hover-name").textContent = baseName(image.path);
    var cluster = data.clusterings[String(state.k)].labels[index];
    hoverBox.querySelector(".hover-cluster").textContent = t("cluster") + " " + cluster +
      (data.labels ? " · " + t("label") + " " + i18n.label(data.labels[index]) : "");
    hoverBox.hidden = false;
    var box = hoverBox.getBoundingClientRect();
    var x = mouse.x + 16, y = mouse.y + 16;
    if (x + box.width > window.innerWidth) { x = Math.max(0, mouse.x - box.width - 16); }
    if (y + box.height > window.innerHeight) { y = Math.max(0, mouse.y - box.height - 16); }
    hoverBox.style.left = x + "px";
    hoverBox.style.top = y + "px";
  }

  function hideHover() { if (hoverBox) { hoverBox.hidden = true; } }

  function showInGrid(index) {
    var clustering = data.clusterings[String(state.k)];
    var arranged = arrange(state.k, clustering);
    var group = groups[clustering.labels[index]];
    if (arranged.rank[index] >= group.shown) { reveal(group, arranged.rank[index] + 1, clustering, arranged); }
    grid.querySelectorAll("figure.highlight").forEach(function (f) { f.classList.remove("highlight"); });
    var figure = figureFor(index);
    figure.classList.add("highlight");
    figure.scrollIntoView({ block: "center" });
    figure.querySelector("button").focus({ preventScroll: true });
    return highlightPoint(index);
  }

  // A larger view of a thumbnail in a modal dialog (Escape closes it); its point is ringed.
  var dialog = null;
  function openPreview(index) {
    if (!dialog) {
      dialog = document.body.appendChild(el("dialog", "preview"));
      dialog.id = "preview";
      dialog.appendChild(el("img"));
      dialog.appendChild(el("p", "preview-path"));
      dialog.appendChild(el("p", "preview-info"));
      var close = dialog.appendChild(el("button", "preview-close"));
      close.type = "button";
      close.addEventListener("click", function () { dialog.close(); });
      dialog.addEventListener("click", function (event) { if (event.target === dialog) { dialog.close(); } });
    }
    var image = data.images[index];
    var clustering = data.clusterings[String(state.k)];
    var img = dialog.querySelector("img");
    // the larger image (--preview-size) is fetched only now; without one, the thumbnail
    img.src = image.preview || image.thumb;
    img.width = image.preview ? image.preview_width : image.thumb_width;
    img.height = image.preview ? image.preview_height : image.thumb_height;
    img.alt = image.path;
    img.setAttribute("data-index", String(index));
    dialog.setAttribute("data-index", String(index));
    dialog.setAttribute("aria-label", t("preview_label"));
    dialog.querySelector(".preview-path").textContent = image.path +
      (data.labels ? " · " + t("label") + ": " + i18n.label(data.labels[index]) : "");
    dialog.querySelector(".preview-info").textContent = t("preview_info",
      { c: clustering.labels[index], d: clustering.distances[index].toFixed(3) });
    dialog.querySelector(".preview-close").textContent = t("close");
    grid.querySelectorAll("figure.highlight").forEach(function (f) { f.classList.remove("highlight"); });
    figureFor(index).classList.add("highlight");
    if (!dialog.open) { dialog.showModal(); }
    var hooks = views.map(function (view) { return view.preview ? view.preview(index, dialog) : null; });
    return Promise.all([highlightPoint(index)].concat(hooks));
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

  function setK(k) {
    k = clampK(k);
    var clustering = data.clusterings[String(k)];
    slider.value = String(k);
    output.textContent = String(k);
    writeHash(k);
    if (state.k === k) { return state.pending; }
    state.k = k;
    document.body.setAttribute("data-k", String(k));
    renderSizes(k, clustering);
    renderGrid(k, clustering);
    var updates = views.map(function (view) { return view.update(k, clustering); });
    state.pending = Promise.all([renderPlot(clustering)].concat(updates));
    return state.pending;
  }

  // Switch language in place: template text, then everything the script wrote, redrawn.
  function setLang(lang) {
    if (lang === state.lang || !i18n.set(lang)) { return state.pending; }
    state.lang = lang;
    figures.forEach(function (figure) { figure.querySelectorAll(".badge[class*=dup-]").forEach(function (b) {
      var d = dupInfo[Number(figure.getAttribute("data-image"))].filter(function (x) {
        return b.classList.contains("dup-" + x.kind[0]);
      })[0];
      b.textContent = t(d.kind[1]);
      b.title = t(d.kind[2], { files: d.others.join(", ") });
    }); });
    views.forEach(function (view) { if (view.relabel) { view.relabel(); } });
    var k = state.k;
    state.k = null;
    return setK(k);
  }

  // Extra views (analysis.js) register a factory before this file runs; each gets update(k).
  var helpers = { el: el, colour: colour, plotText: plotText, state: state, t: t,
                  baseName: baseName, openPreview: openPreview, ringPoints: ringPoints };
  var views = (window.dinoclustViews || []).map(function (make) { return make(data, helpers); });

  if (colourBy) {
    colourBy.addEventListener("change", function () {
      state.colourBy = colourBy.value;
      document.body.setAttribute("data-colour-by", state.colourBy);
      state.pending = renderPlot(data.clusterings[String(state.k)]);
    });
  }

  document.querySelectorAll(".lang-switch button").forEach(function (button) {
    button.addEventListener("click", function () { setLang(button.getAttribute("data-lang")); });
  });
  slider.addEventListener("input", function () { setK(parseInt(slider.value, 10)); });
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
  document.addEventListener("keydown", function (event) {
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" ||
        (dialog && dialog.open) || event.altKey || event.ctrlKey || event.metaKey) { return; }
    if (event.key === "ArrowRight" || event.key === "ArrowUp") { setK(state.k + 1); event.preventDefault(); }
    if (event.key === "ArrowLeft" || event.key === "ArrowDown") { setK(state.k - 1); event.preventDefault(); }
  });

  window.dinoclust = { data: data, setK: setK, setLang: setLang, showInGrid: showInGrid,
                       openPreview: openPreview, state: state };
  Promise.resolve(setK(kFromHash() || kMin)).then(function () {
    state.ready = true;
    document.body.setAttribute("data-ready", "true");
  });
})();
