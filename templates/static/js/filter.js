/* dinoclust find: which images a query names. An image matches when its path or its known label
   contains every word of the query, in any case (Unicode NFC, so that a name typed on one system
   finds one written on another). The texts are made once; a query is one pass of indexOf over
   them (benchmarks/bench_page.py --find measures it at 100,000 images). */
(function () {
  "use strict";

  var ns = window.dinoclust, data = ns.data;
  var i18n = window.dinoclustI18n;
  var texts = null;

  function fold(s) { return s.normalize("NFC").toLowerCase(); }

  function haystack() {
    if (texts) { return texts; }
    var n = data.images.length;
    texts = new Array(n);
    for (var i = 0; i < n; i++) {
      var s = data.images[i].path;
      if (data.labels) { s += "\n" + data.labels[i] + "\n" + i18n.label(data.labels[i]); }
      texts[i] = fold(s);
    }
    return texts;
  }

  // The matching images' indices in image order, or null for an empty query.
  function match(query) {
    var words = fold(query).split(/\s+/).filter(Boolean);
    if (!words.length) { return null; }
    var h = haystack(), out = [];
    for (var i = 0; i < h.length; i++) {
      var s = h[i], all = true;
      for (var w = 0; w < words.length && all; w++) { all = s.indexOf(words[w]) >= 0; }
      if (all) { out.push(i); }
    }
    return Int32Array.from(out);
  }

  // One byte per image: 1 where it matches (the strips and the plot ask per image).
  function mask(found) {
    var m = new Uint8Array(data.images.length);
    for (var j = 0; j < found.length; j++) { m[found[j]] = 1; }
    return m;
  }

  // Matches per cluster of a clustering.
  function perCluster(found, clustering) {
    var counts = clustering.sizes.map(function () { return 0; });
    for (var j = 0; j < found.length; j++) { counts[clustering.labels[found[j]]] += 1; }
    return counts;
  }

  ns.find = { match: match, mask: mask, perCluster: perCluster };
})();
