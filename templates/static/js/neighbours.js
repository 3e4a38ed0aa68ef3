/* dinoclust similar images: the preview dialog's strip of each image's nearest neighbours (cosine
   of the DINO features, computed at build time). The packed lists (payload.page_neighbours) are
   inline in the single file; a folder site adds data/neighbours.js when the first preview opens,
   so the page loads without them. Registers a view; app.js calls preview(index, dialog). */
(function () {
  "use strict";

  var SRC = "data/neighbours.js";
  var decoded = null;   // a Promise of { count, indices: Int32Array, similarity: Float32Array }

  function packed() {
    if (window.dinoclustNeighbours) { return Promise.resolve(window.dinoclustNeighbours); }
    var inline = document.getElementById("dinoclust-neighbours");
    if (inline) { return Promise.resolve(JSON.parse(inline.textContent)); }
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = SRC;
      script.onload = function () { resolve(window.dinoclustNeighbours); };
      script.onerror = function () { reject(new Error(SRC + " could not be loaded")); };
      document.body.appendChild(script);
    });
  }

  // One big-endian integer of p.bytes bytes per neighbour: index * 2^sim_bits + quantised cosine.
  function decode(p, n) {
    var bin = window.atob(p.data);
    var total = n * p.count, base = Math.pow(2, p.sim_bits);
    var step = base > 1 && p.hi > p.lo ? (p.hi - p.lo) / (base - 1) : 0;
    var indices = new Int32Array(total), similarity = new Float32Array(total);
    for (var e = 0, at = 0; e < total; e++) {
      var v = 0;
      for (var b = 0; b < p.bytes; b++) { v = v * 256 + bin.charCodeAt(at++); }
      indices[e] = Math.floor(v / base);
      similarity[e] = p.lo + (v % base) * step;
    }
    return { count: p.count, indices: indices, similarity: similarity };
  }

  function neighboursOf(found, index) {
    var out = [];
    for (var j = 0; j < found.count; j++) {
      var e = index * found.count + j;
      out.push({ index: found.indices[e], similarity: found.similarity[e] });
    }
    return out;
  }

  function make(data, h) {
    var shown = null;  // the image whose strip is in the dialog

    function strip(dialog) {
      var box = dialog.querySelector(".neighbours");
      if (!box) {
        box = h.el("section", "neighbours");
        box.appendChild(h.el("h3", "neighbours-title"));
        box.appendChild(h.el("div", "neighbour-strip"));
        dialog.insertBefore(box, dialog.querySelector(".preview-foot"));
        dialog.addEventListener("close", function () { shown = null; h.ringPoints([]); });
      }
      box.querySelector(".neighbours-title").textContent = h.t("neighbours_title");
      return box.querySelector(".neighbour-strip");
    }

    function thumb(n) {
      var button = h.neighbourTile(n.index, n.similarity);
      button.setAttribute("data-neighbour", String(n.index));
      button.setAttribute("data-similarity", n.similarity.toFixed(3));
      return button;
    }

    function preview(index, dialog) {
      var row = strip(dialog);
      shown = index;
      if (!decoded) {
        decoded = packed().then(function (p) { return decode(p, data.images.length); });
      }
      return decoded.then(function (found) {
        if (shown !== index) { return null; }  // another preview opened meanwhile
        var list = neighboursOf(found, index);
        row.textContent = "";
        list.forEach(function (n) { row.appendChild(thumb(n)); });
        dialog.setAttribute("data-neighbours", String(list.length));
        return h.ringPoints(list.map(function (n) { return n.index; }));
      }, function () {
        row.textContent = h.t("neighbours_missing");
        return null;
      });
    }

    return { update: function () { return null; }, preview: preview };
  }

  window.dinoclustViews = (window.dinoclustViews || []).concat([make]);
})();
