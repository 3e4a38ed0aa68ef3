/* dinoclust page data: decodes the inline data (payload.page_data) once, into window.dinoclust.data.
   N-sized lists arrive as base64 typed arrays (one <script type="application/octet-stream"> each);
   each k's distances arrive when that k is first shown (data/distances-k<k>.js, or inline in the
   single file). The other page files (plot, grid, preview, panels, app) share window.dinoclust. */
(function () {
  "use strict";

  var ns = window.dinoclust = window.dinoclust || {};
  var meta = JSON.parse(document.getElementById("dinoclust-data").textContent);
  var TYPES = { u1: Uint8Array, u2: Uint16Array, u4: Uint32Array, f8: Float64Array };
  var HEX = [];
  for (var h = 0; h < 256; h++) { HEX.push((h < 16 ? "0" : "") + h.toString(16)); }

  function typed(dtype, b64) {
    var bin = window.atob(b64);
    var raw = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { raw[i] = bin.charCodeAt(i); }
    var T = TYPES[dtype];
    return new T(raw.buffer, 0, raw.length / T.BYTES_PER_ELEMENT);
  }

  function column(name) {
    var node = document.getElementById("dinoclust-col-" + name);
    return node ? typed(meta.columns[name], node.textContent.trim()) : null;
  }

  // Each path: the first `shared` UTF-16 units of the one before, then its own rest.
  function paths(n) {
    var shared = column("path_shared"), out = new Array(n), previous = "";
    for (var i = 0; i < n; i++) {
      previous = previous.slice(0, shared[i]) + meta.path_rest[i];
      out[i] = previous;
    }
    return out;
  }

  // Names written as prefix + hex key + suffix (the site's thumbs/ and previews/), or listed.
  function namer(spec, keys, n) {
    if (!spec) { return function () { return null; }; }
    if (spec.list) { return function (i) { return spec.list[i]; }; }
    var width = keys.length / n;
    return function (i) {
      var s = spec.prefix;
      for (var b = i * width; b < (i + 1) * width; b++) { s += HEX[keys[b]]; }
      return s + spec.suffix;
    };
  }

  function images(n, names) {
    var tw = column("thumb_width"), th = column("thumb_height");
    var pw = column("preview_width"), ph = column("preview_height");
    var keys = column("thumb_hex");
    var thumb = namer(meta.thumbs, keys, n);
    var preview = namer(meta.previews, keys, n);
    var out = new Array(n);
    for (var i = 0; i < n; i++) {
      var has = pw && pw[i] > 0;
      out[i] = { path: names[i], thumb: thumb(i), thumb_width: tw[i], thumb_height: th[i],
                 preview: has ? preview(i) : null, preview_width: has ? pw[i] : null,
                 preview_height: has ? ph[i] : null };
    }
    return out;
  }

  // PC1–PC3, from 16-bit steps over each axis's range.
  function axes(n) {
    var q = column("points"), out = [new Float64Array(n), new Float64Array(n), new Float64Array(n)];
    meta.points_range.forEach(function (range, a) {
      var step = (range[1] - range[0]) / 65535;
      for (var i = 0; i < n; i++) { out[a][i] = range[0] + q[3 * i + a] * step; }
    });
    return out;
  }

  // One duplicate-group number per image and kind (-1: none), instead of searching the groups.
  function duplicateGroups(n) {
    var dup = meta.duplicates || { exact: [], near: [] };
    var out = {};
    ["exact", "near"].forEach(function (kind) {
      var ids = new Int32Array(n).fill(-1);
      (dup[kind] || []).forEach(function (group, g) {
        group.forEach(function (index) { ids[index] = g; });
      });
      out[kind] = ids;
    });
    return out;
  }

  var data = meta;
  var n = meta.n;
  var names = paths(n);
  data.images = images(n, names);
  data.axes = axes(n);
  data.point = function (i) { return [data.axes[0][i], data.axes[1][i], data.axes[2][i]]; };
  data.sample = column("display_sample");
  data.dupGroups = duplicateGroups(n);
  var labelIndex = column("label_index");
  data.labels = labelIndex ? Array.prototype.map.call(labelIndex, function (l) {
    return meta.label_names[l];
  }) : null;
  data.labelIndex = labelIndex;
  data.k_values.forEach(function (k) {
    var c = data.clusterings[String(k)];
    c.labels = column("labels_" + k);
    c.distances = null;  // loadDistances(k)
  });

  var SRC = "data/distances-k";
  var loading = {};
  function packedDistances(k) {
    var store = window.dinoclustDistances || {};
    if (store[k]) { return Promise.resolve(store[k]); }
    var inline = document.getElementById("dinoclust-distances-" + k);
    if (inline) { return Promise.resolve(JSON.parse(inline.textContent)); }
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = SRC + k + ".js";
      script.onload = function () { resolve((window.dinoclustDistances || {})[k]); };
      script.onerror = function () { reject(new Error(script.src + " could not be loaded")); };
      document.body.appendChild(script);
    });
  }

  // k's distances to the centre (a Float64Array, exactly report.json's numbers), once.
  function loadDistances(k) {
    var c = data.clusterings[String(k)];
    if (c.distances) { return Promise.resolve(c.distances); }
    if (!loading[k]) {
      loading[k] = packedDistances(k).then(function (p) {
        var raw = typed(p.dtype === "micro" ? "u4" : p.dtype, p.data);
        var out = new Float64Array(raw.length);
        for (var i = 0; i < raw.length; i++) { out[i] = p.dtype === "micro" ? raw[i] / 1e6 : raw[i]; }
        c.distances = out;
        return out;
      });
    }
    return loading[k];
  }

  ns.data = data;
  ns.loadDistances = loadDistances;

  // Helpers every view uses. Clusters: Paul Tol's "muted" scheme first (distinguishable with the
  // common colour-vision deficiencies), then 40 more for k up to 50 (sort's limit), each picked
  // to be as far as possible (CIELAB ΔE*ab) from all before it; no two of the 50 are within 22
  // (tests/test_palette.py checks it). Labels: his "bright" scheme, not to be mistaken for them.
  var i18n = window.dinoclustI18n;  // lang.js
  var PALETTE = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933",
                 "#DDCC77", "#CC6677", "#882255", "#AA4499", "#DDDDDD",
                 "#00EE00", "#FF0000", "#0000FF", "#FF11FF", "#004466",
                 "#FF9900", "#00EE99", "#663300", "#8899FF", "#FF0088",
                 "#BBDD00", "#8855FF", "#887766", "#AA1111", "#33AA11",
                 "#FFBBFF", "#DD8855", "#114433", "#EE77FF", "#99DD99",
                 "#DDBB00", "#FF2255", "#9977AA", "#9900AA", "#0066EE",
                 "#0088CC", "#555511", "#553344", "#EE00BB", "#AA00FF",
                 "#FFBBAA", "#EE6622", "#FF77BB", "#22EECC", "#AA7700",
                 "#2255AA", "#99CC55", "#668899", "#779966", "#2211CC"];
  var LABEL_PALETTE = ["#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB"];
  // Plotly's own words (its mode bar, the Sankey's hover) in the reader's language: a locale per
  // language maps Plotly's English (the UI strings plotly_*, in English) to that language's.
  if (typeof window.Plotly !== "undefined") {
    i18n.ui.langs.forEach(function (lang) {
      var dictionary = {};
      Object.keys(i18n.ui.strings.en).forEach(function (key) {
        if (key.indexOf("plotly_") === 0) { dictionary[i18n.ui.strings.en[key]] = i18n.ui.strings[lang][key]; }
      });
      if (lang !== "en") { window.Plotly.register({ moduleType: "locale", name: lang, dictionary: dictionary }); }
    });
  }

  ns.util = {
    PALETTE: PALETTE,
    LABEL_PALETTE: LABEL_PALETTE,
    colour: function (cluster) { return PALETTE[cluster % PALETTE.length]; },
    labelColour: function (i) { return LABEL_PALETTE[i % LABEL_PALETTE.length]; },
    baseName: function (path) { return path.slice(path.lastIndexOf("/") + 1); },
    // Plotly reads a few HTML tags in hover text: show names as text, never as markup.
    plotText: function (s) {
      return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    },
    t: function (key, args) { return i18n.t(key, args); },
    // Every plot's Plotly config: the reader's language, and no "Share chart..." button (it
    // uploads the data to Plotly Cloud; the page sends nothing anywhere).
    plotConfig: function (extra) {
      return Object.assign({ displaylogo: false, locale: i18n.lang,
                             modeBarButtonsToRemove: ["sendChartToCloud"] }, extra);
    },
    // Every CSV the page makes goes through here, by the rule of exports.py's spreadsheet_safe
    // and csv_text (tests/csv_guard_cases.json holds the cases both are tested on): a text cell
    // a spreadsheet would run as a formula gets a leading ' (OWASP); numbers stay numbers; a cell
    // with a quote, a comma or a line break (a lone CR too) is quoted.
    spreadsheetSafe: function (value) {
      return typeof value === "string" && /^[=+\-@\t\r]/.test(value) ? "'" + value : value;
    },
    csvText: function (rows) {
      return rows.map(function (row) {
        return row.map(function (value) {
          var s = String(ns.util.spreadsheetSafe(value));
          return /[",\r\n]/.test(s) ? "\"" + s.replace(/"/g, "\"\"") + "\"" : s;
        }).join(",");
      }).join("\n") + "\n";
    },
    // A file made in the browser, downloaded through a link (works offline, from file://).
    save: function (text, name, type) {
      var link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob([text], { type: type }));
      link.download = name;
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(function () { URL.revokeObjectURL(link.href); }, 10000);
    },
    num: function (x) { return Number(x).toLocaleString("en"); },  // 100,000 in every language
    el: function (tag, className, text) {
      var node = document.createElement(tag);
      if (className) { node.className = className; }
      if (text !== undefined) { node.textContent = text; }
      return node;
    }
  };
  ns.state = { k: null, plotted: false, plotLang: null, ready: false, colourBy: "cluster",
               lang: i18n.lang, selected: null, ringed: [], found: [], shown: null,
               pending: Promise.resolve() };
})();
