/* dinoclust query by photo (issue 29; only in a site built with --query). The reader picks or
   drops photos; on first use the page adds five scripts from query/ (no fetch(): file:// refuses
   it; the single file reads the same five from its data blocks): the onnxruntime-web runtime,
   its .wasm as base64 (ort-wasm.js), its glue module as text
   (ort-glue.js), the build's model as ONNX (model.js) and the collection's index (index.js).
   Each photo is prepared exactly as the build prepares its images (imaging.decode + vit: EXIF
   orientation, alpha on white, Pillow's whole-factor reduce, Pillow's BILINEAR to 224 × 224,
   ImageNet mean/std), embedded in this page, and placed: its cluster and distance to the centre
   at every k (following the slider), its 12 most similar images by cosine over the whole index,
   and a point in the 3D view. Nothing is sent anywhere and nothing is kept. Registers a view.
   Attributes others may read: #query-section[data-query-state] (idle, working, done, error;
   [data-query-unavailable] in the notebook's copy); each li.query-result[data-query-photo] has
   data-query-k, -cluster, -distance and -fit for the k shown, or data-query-error; its similar
   images are [data-query-neighbour] (an index into report.json's images) with
   [data-query-similarity]; the plot's trace with uid "query" holds the photos' points. */
(function () {
  "use strict";

  var ns = window.dinoclust, data = ns.data, u = ns.util, state = ns.state;
  var section = document.getElementById("query-section");
  var input = document.getElementById("query-files");
  var drop = document.getElementById("query-drop");
  var loadBox = document.getElementById("query-load");
  var bar = document.getElementById("query-progress");
  var status = document.getElementById("query-status");
  var list = document.getElementById("query-results");

  // What query/ holds, in load order, with a rough share of the loading time each (progress)
  // and the global each file's script sets (none: the runtime's own script, which sets `ort`).
  var FILES = [["query/ort.wasm.min.js", 1, null], ["query/ort-wasm.js", 4, "DINOCLUST_ORT_WASM"],
               ["query/ort-glue.js", 1, "DINOCLUST_ORT_GLUE"],
               ["query/model.js", 12, "DINOCLUST_QUERY_MODEL"],
               ["query/index.js", 3, "DINOCLUST_QUERY_INDEX"]];
  var SESSION_SHARE = 4;  // compiling the runtime and the model
  var SIZE = 224;  // vit.Preprocess
  var MEAN = [0.485, 0.456, 0.406];
  var STD = [0.229, 0.224, 0.225];
  // imaging.decode keeps max(thumbnail size, preview size) px on the long side when it reduces a
  // large image: index.js's "decode" says what the build used (800 px by default).
  var DEFAULT_SIDE = 800;
  // A browser tab holds the photo's pixels twice (bitmap and canvas, 4 bytes each): above this a
  // photo is refused with a message rather than risking the tab.
  var MAX_MEGAPIXELS = 50;
  var TOP = 12;  // similar images shown, as `dinoclust query`
  var HEADER_BYTES = 1 << 19;  // read for the format, size and EXIF orientation

  // The index and the search, for benchmarks/bench_query_page.py --search (no page needed).
  ns.queryIndex = { decode: decodeIndex, place: place };
  if (!section || !input) { return; }  // the notebook's copy: the template says why there is none

  var loaded = null;  // a Promise of { session, index }
  var answers = [];   // the photos of the last pick, answered or not, in order
  var timings = { load: null, embed: [] };

  function setState(name) { section.setAttribute("data-query-state", name); }

  // ---- loading, on first use ----------------------------------------------------------------
  function script(src) {
    return new Promise(function (resolve, reject) {
      var node = document.createElement("script");
      node.src = src;
      node.onload = resolve;
      node.onerror = function () { reject(new Error(src + " could not be loaded")); };
      document.body.appendChild(node);
    });
  }

  // One query file: the folder site adds its script; the single file, which can load nothing,
  // carries each as a data block (site/query.py's block_id) holding the value the script sets,
  // or for the runtime's script its text, run from a blob: URL (its CSP allows blob:).
  function need(f) {
    var block = document.getElementById("dinoclust-" + f[0].replace(/[\/.]/g, "-"));
    if (!block) { return script(f[0]); }
    var value = JSON.parse(block.textContent);
    if (f[2]) { window[f[2]] = value; return Promise.resolve(); }
    var url = URL.createObjectURL(new Blob([value], { type: "text/javascript" }));
    return script(url).then(function () { URL.revokeObjectURL(url); });
  }

  function bytes(b64) {
    var bin = window.atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out;
  }

  function floats(b64) {  // little-endian float32, as every browser's typed arrays are
    var b = bytes(b64);
    return new Float32Array(b.buffer, 0, b.length / 4);
  }

  function decodeIndex(ix) {
    if (!ix || ix.version !== 1 || ix.n !== data.images.length) {
      throw new Error("query/index.js does not match this page");
    }
    var out = { n: ix.n, dim: ix.dim, vectors: new Int8Array(bytes(ix.vectors).buffer),
                scales: floats(ix.scales), mean: floats(ix.pca.mean),
                components: floats(ix.pca.components),
                side: ix.decode ? Math.max(ix.decode.thumb_size, ix.decode.preview_size) : DEFAULT_SIDE,
                clusterings: {} };
    out.d = out.components.length / ix.dim;
    Object.keys(ix.clusterings).forEach(function (k) {
      var c = ix.clusterings[k];
      out.clusterings[k] = { centres: floats(c.centres), typical: c.typical };
    });
    return out;
  }

  function load() {
    if (loaded) { return loaded; }
    var total = SESSION_SHARE, done = 0, started = performance.now();
    FILES.forEach(function (f) { total += f[1]; });
    loadBox.hidden = false;
    bar.value = 0;
    var chain = Promise.resolve();
    FILES.forEach(function (f) {
      chain = chain.then(function () { return need(f); }).then(function () {
        done += f[1];
        bar.value = Math.round(100 * done / total);
      });
    });
    loaded = chain.then(function () {
      var ort = window.ort;
      ort.env.wasm.numThreads = 1;  // file:// gets no cross-origin isolation: no threads
      ort.env.wasm.wasmBinary = bytes(window.DINOCLUST_ORT_WASM);
      var glue = new Blob([window.DINOCLUST_ORT_GLUE], { type: "text/javascript" });
      ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(glue) };
      return ort.InferenceSession.create(bytes(window.DINOCLUST_QUERY_MODEL),
                                         { executionProviders: ["wasm"] });
    }).then(function (session) {
      var index = decodeIndex(window.DINOCLUST_QUERY_INDEX);
      // the large texts are in the runtime and the index now: let them go
      window.DINOCLUST_ORT_WASM = window.DINOCLUST_QUERY_MODEL = null;
      bar.value = 100;
      loadBox.hidden = true;
      timings.load = performance.now() - started;
      return { session: session, index: index };
    });
    loaded.catch(function () { loaded = null; loadBox.hidden = true; });  // a later pick retries
    return loaded;
  }

  // ---- the file: format, size and EXIF orientation from its first bytes ----------------------
  function be16(b, at) { return (b[at] << 8) | b[at + 1]; }
  function be32(b, at) { return ((b[at] << 24) >>> 0) + ((b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]); }
  function le16(b, at) { return b[at] | (b[at + 1] << 8); }
  function le24(b, at) { return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16); }
  function ascii(b, at, n) { return String.fromCharCode.apply(null, b.subarray(at, at + n)); }

  function exifOrientation(b, at, end) {  // a TIFF block (after "Exif\0\0"): IFD0's tag 0x0112
    var little = ascii(b, at, 2) === "II";
    var r16 = function (p) { return little ? le16(b, p) : be16(b, p); };
    var r32 = function (p) { return little ? (le16(b, p) + le16(b, p + 2) * 65536) : be32(b, p); };
    var ifd = at + r32(at + 4);
    if (ifd + 2 > end) { return 1; }
    for (var e = 0, count = r16(ifd); e < count && ifd + 2 + 12 * e + 12 <= end; e++) {
      var entry = ifd + 2 + 12 * e;
      if (r16(entry) === 0x0112) { var v = r16(entry + 8); return v >= 1 && v <= 8 ? v : 1; }
    }
    return 1;
  }

  function sniffJpeg(b, info) {
    for (var at = 2; at + 4 <= b.length;) {
      if (b[at] !== 0xFF) { break; }
      var marker = b[at + 1];
      if (marker === 0xFF) { at += 1; continue; }
      if (marker === 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker === 0x01) { at += 2; continue; }
      var length = be16(b, at + 2);
      if (marker === 0xE1 && ascii(b, at + 4, 6) === "Exif\u0000\u0000" && info.orientation === 1) {
        info.orientation = exifOrientation(b, at + 10, Math.min(b.length, at + 2 + length));
      }
      if (marker >= 0xC0 && marker <= 0xCF && marker !== 0xC4 && marker !== 0xC8 && marker !== 0xCC) {
        if (at + 9 <= b.length) { info.height = be16(b, at + 5); info.width = be16(b, at + 7); }
        break;
      }
      if (marker === 0xDA) { break; }
      at += 2 + length;
    }
  }

  // { kind: jpeg|png|webp|gif|heic|other, width, height (stored, before orientation), orientation }
  function sniff(b) {
    var info = { kind: "other", width: 0, height: 0, orientation: 1 };
    if (b.length >= 3 && b[0] === 0xFF && b[1] === 0xD8 && b[2] === 0xFF) {
      info.kind = "jpeg";
      sniffJpeg(b, info);
    } else if (b.length >= 24 && be32(b, 0) === 0x89504E47) {
      info.kind = "png";
      info.width = be32(b, 16);
      info.height = be32(b, 20);
    } else if (b.length >= 6 && ascii(b, 0, 4) === "GIF8") {
      info.kind = "gif";
    } else if (b.length >= 30 && ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 4) === "WEBP") {
      info.kind = "webp";
      var chunk = ascii(b, 12, 4);
      if (chunk === "VP8X") { info.width = le24(b, 24) + 1; info.height = le24(b, 27) + 1; }
      if (chunk === "VP8L") {
        var bits = b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24);
        info.width = (bits & 0x3FFF) + 1;
        info.height = ((bits >>> 14) & 0x3FFF) + 1;
      }
      if (chunk === "VP8 ") { info.width = le16(b, 26) & 0x3FFF; info.height = le16(b, 28) & 0x3FFF; }
    } else if (b.length >= 12 && ascii(b, 4, 4) === "ftyp" &&
               /^(heic|heix|hevc|hevx|heim|heis|mif1|msf1)$/.test(ascii(b, 8, 4))) {
      info.kind = "heic";
    }
    return info;
  }

  // ---- pixels, as imaging.decode makes them ------------------------------------------------
  function Failure(key, args) { this.key = key; this.args = args || {}; }

  // Pillow's Image.reduce(f) (Reduce.c): boxes of f × f from the stored image's top-left corner
  // (the last ones partial), each the rounded mean by Pillow's fixed-point multiplier. The build
  // reduces before it turns the image upright, so on the upright pixels the boxes start from
  // the corner the stored origin went to: `right` and `bottom` say which.
  function multiplier(n) { return Math.trunc(Math.fround(4294967296 / Math.fround(256 * n))); }

  function spans(size, f, fromEnd) {
    var count = Math.ceil(size / f), out = new Int32Array(2 * count);
    for (var i = 0; i < count; i++) {
      var end = fromEnd ? size - (count - 1 - i) * f : Math.min(size, (i + 1) * f);
      out[2 * i] = Math.max(0, end - f);
      out[2 * i + 1] = end;
    }
    return out;
  }

  function reduce(img, f, right, bottom) {
    var xs = spans(img.w, f, right), ys = spans(img.h, f, bottom);
    var ow = xs.length / 2, oh = ys.length / 2, cs = img.cs, w = img.w, src = img.data;
    var out = new Uint8Array(ow * oh * 3);
    for (var oy = 0; oy < oh; oy++) {
      var y0 = ys[2 * oy], y1 = ys[2 * oy + 1];
      for (var ox = 0; ox < ow; ox++) {
        var x0 = xs[2 * ox], x1 = xs[2 * ox + 1];
        var n = (x1 - x0) * (y1 - y0), m = multiplier(n), amend = n >> 1;
        var r = amend, g = amend, b = amend;
        for (var y = y0; y < y1; y++) {
          for (var p = (y * w + x0) * cs, e = (y * w + x1) * cs; p < e; p += cs) {
            r += src[p]; g += src[p + 1]; b += src[p + 2];
          }
        }
        var o = (oy * ow + ox) * 3;
        out[o] = Math.floor(r * m / 16777216);
        out[o + 1] = Math.floor(g * m / 16777216);
        out[o + 2] = Math.floor(b * m / 16777216);
      }
    }
    return { w: ow, h: oh, cs: 3, data: out };
  }

  // Pillow's BILINEAR resize (Resample.c): a triangle filter widened by the scale when shrinking
  // (antialiased), coefficients in 22-bit fixed point, the horizontal pass first, rounded to
  // 8 bits in between. Canvas smoothing is not the same filter.
  var PRECISION = 22;
  function coefficients(inSize, outSize) {
    var scale = inSize / outSize, filterscale = Math.max(1, scale), support = filterscale;
    var ksize = Math.ceil(support) * 2 + 1;
    var bounds = new Int32Array(2 * outSize), kk = new Int32Array(outSize * ksize);
    var k = new Float64Array(ksize);
    for (var xx = 0; xx < outSize; xx++) {
      var center = (xx + 0.5) * scale, ww = 0, ss = 1 / filterscale;
      var xmin = Math.max(0, Math.trunc(center - support + 0.5));
      var xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
      for (var x = 0; x < xmax; x++) {
        var t = Math.abs((x + xmin - center + 0.5) * ss);
        k[x] = t < 1 ? 1 - t : 0;
        ww += k[x];
      }
      for (x = 0; x < xmax; x++) {
        var v = ww !== 0 ? k[x] / ww : k[x];
        kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION))
                                   : Math.trunc(0.5 + v * (1 << PRECISION));
      }
      bounds[2 * xx] = xmin;
      bounds[2 * xx + 1] = xmax;
    }
    return { ksize: ksize, bounds: bounds, kk: kk };
  }

  function clip8(ss) {
    if (ss >= 255 * 4194304 + 4194304) { return 255; }
    if (ss <= 0) { return 0; }
    return Math.floor(ss / 4194304);
  }

  function resample(img, outW, outH) {
    var cs = img.cs, src = img.data, w = img.w, h = img.h;
    var horizontal = outW !== w, vertical = outH !== h;
    var mid = img;
    if (horizontal) {
      var c = coefficients(w, outW), tmp = new Uint8Array(outW * h * 3);
      for (var y = 0; y < h; y++) {
        for (var xx = 0; xx < outW; xx++) {
          var xmin = c.bounds[2 * xx], xmax = c.bounds[2 * xx + 1], base = xx * c.ksize;
          for (var ch = 0; ch < 3; ch++) {
            var ss = 1 << (PRECISION - 1);
            for (var x = 0; x < xmax; x++) { ss += src[(y * w + x + xmin) * cs + ch] * c.kk[base + x]; }
            tmp[(y * outW + xx) * 3 + ch] = clip8(ss);
          }
        }
      }
      mid = { w: outW, h: h, cs: 3, data: tmp };
    }
    if (!vertical) { return mid; }
    var r = coefficients(h, outH), out = new Uint8Array(mid.w * outH * 3), md = mid.data;
    for (var yy = 0; yy < outH; yy++) {
      var ymin = r.bounds[2 * yy], ymax = r.bounds[2 * yy + 1], kb = yy * r.ksize;
      for (var x2 = 0; x2 < mid.w; x2++) {
        for (var ch2 = 0; ch2 < 3; ch2++) {
          var s2 = 1 << (PRECISION - 1);
          for (var yk = 0; yk < ymax; yk++) { s2 += md[((yk + ymin) * mid.w + x2) * mid.cs + ch2] * r.kk[kb + yk]; }
          out[(yy * mid.w + x2) * 3 + ch2] = clip8(s2);
        }
      }
    }
    return { w: mid.w, h: outH, cs: 3, data: out };
  }

  // Where the stored image's top-left corner is once upright, per EXIF orientation.
  var FROM_RIGHT = { 2: true, 3: true, 6: true, 7: true };
  var FROM_BOTTOM = { 3: true, 4: true, 7: true, 8: true };

  // The upright RGB pixels the build's model sees, before normalisation (imaging.decode).
  function modelPixels(bitmap, info, side) {
    var w = bitmap.width, h = bitmap.height;
    var canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    var ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.fillStyle = "#ffffff";  // _to_rgb: transparency composited on white
    ctx.fillRect(0, 0, w, h);
    ctx.drawImage(bitmap, 0, 0);
    var img = { w: w, h: h, cs: 4, data: ctx.getImageData(0, 0, w, h).data };
    canvas.width = canvas.height = 0;
    var right = Boolean(FROM_RIGHT[info.orientation]), bottom = Boolean(FROM_BOTTOM[info.orientation]);
    var long = Math.max(w, h), short = Math.min(w, h);
    if (info.kind === "jpeg") {  // Image.draft: the decoder's 1/2, 1/4 or 1/8 scale, as a box mean
      var scale = Math.min(Math.floor(long / side), Math.floor(short / SIZE));
      var s = scale >= 8 ? 8 : scale >= 4 ? 4 : scale >= 2 ? 2 : 1;
      if (s > 1) { img = reduce(img, s, right, bottom); }
    }
    var factor = Math.min(Math.floor(img.w / SIZE), Math.floor(img.h / SIZE),
                          Math.floor(Math.max(img.w, img.h) / side));
    if (factor >= 2) { img = reduce(img, factor, right, bottom); }
    return resample(img, SIZE, SIZE);
  }

  function normalised(img) {  // [1, 3, 224, 224], as vit's preprocessing
    var plane = SIZE * SIZE, out = new Float32Array(3 * plane);
    for (var i = 0; i < plane; i++) {
      for (var c = 0; c < 3; c++) {
        out[c * plane + i] = (img.data[i * img.cs + c] / 255 - MEAN[c]) / STD[c];
      }
    }
    return out;
  }

  function thumbnail(bitmap) {
    var scale = Math.min(1, 96 / Math.max(bitmap.width, bitmap.height));
    var canvas = u.el("canvas", "query-thumb");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    canvas.setAttribute("aria-hidden", "true");
    return canvas;
  }

  function tooLarge(name, w, h) {
    return w * h > MAX_MEGAPIXELS * 1e6
      ? new Failure("query_err_too_large", { name: name, w: u.num(w), h: u.num(h), max: MAX_MEGAPIXELS }) : null;
  }

  // A file's format, size and orientation, from its first bytes; a GIF or a photo too large for
  // the page is refused here, before the model is loaded.
  function inspect(file) {
    return file.slice(0, HEADER_BYTES).arrayBuffer().then(function (buffer) {
      var b = new Uint8Array(buffer), info = sniff(b);
      if (info.kind === "gif") { throw new Failure("query_err_gif", { name: file.name }); }
      var big = tooLarge(file.name, info.width, info.height);
      if (big) { throw big; }
      // a WebP's EXIF chunk (VP8X flag 0x08) usually follows the image data: walk the chunks
      return info.kind === "webp" && ascii(b, 12, 4) === "VP8X" && (b[20] & 0x08)
        ? webpOrientation(file, 12).then(function (o) { info.orientation = o; return info; })
        : info;
    });
  }

  // The orientation in a WebP's EXIF chunk (a TIFF block, "Exif\0\0" first in some files),
  // reading each chunk's 8-byte header from `at` on; 1 if there is none.
  function webpOrientation(file, at) {
    if (at + 8 > file.size) { return Promise.resolve(1); }
    return file.slice(at, at + 8).arrayBuffer().then(function (buffer) {
      var h = new Uint8Array(buffer), size = le16(h, 4) + le16(h, 6) * 65536;
      if (ascii(h, 0, 4) !== "EXIF") { return webpOrientation(file, at + 8 + size + (size & 1)); }
      return file.slice(at + 8, at + 8 + Math.min(size, 1 << 16)).arrayBuffer().then(function (data) {
        var d = new Uint8Array(data), start = ascii(d, 0, 6) === "Exif\u0000\u0000" ? 6 : 0;
        return d.length >= start + 8 ? exifOrientation(d, start, d.length) : 1;
      });
    });
  }

  // Chromium turns a JPEG or PNG by its EXIF orientation but not a WebP (Pillow turns all three):
  // whether this browser does, tested once on a 2 × 1 WebP tagged "rotate 90°" (orientation 6).
  var TURNED_WEBP = "UklGRlAAAABXRUJQVlA4WAoAAAAIAAAAAQAAAAAAVlA4TA8AAAAvAQAAAAcQ/Y/+ByKi/wEARVhJRh" +
    "oAAABNTQAqAAAACAABARIAAwAAAAEABgAAAAAAAA==";
  var webpTurns = null;
  function browserTurnsWebp() {
    if (webpTurns === null) {
      var bytes = Uint8Array.from(window.atob(TURNED_WEBP), function (c) { return c.charCodeAt(0); });
      webpTurns = window.createImageBitmap(new Blob([bytes], { type: "image/webp" }),
        { imageOrientation: "from-image" })
        .then(function (bitmap) { var turned = bitmap.width === 1; bitmap.close(); return turned; },
              function () { return true; });  // cannot tell: leave the browser's own result
    }
    return webpTurns;
  }

  // The bitmap turned upright by EXIF orientation `o` (the transforms of Pillow's exif_transpose).
  function upright(bitmap, o) {
    var w = bitmap.width, h = bitmap.height, swap = o >= 5;
    var canvas = document.createElement("canvas");
    canvas.width = swap ? h : w;
    canvas.height = swap ? w : h;
    var ctx = canvas.getContext("2d");
    var m = { 2: [-1, 0, 0, 1, w, 0], 3: [-1, 0, 0, -1, w, h], 4: [1, 0, 0, -1, 0, h],
              5: [0, 1, 1, 0, 0, 0], 6: [0, 1, -1, 0, h, 0], 7: [0, -1, -1, 0, h, w],
              8: [0, -1, 1, 0, 0, w] }[o];
    ctx.setTransform(m[0], m[1], m[2], m[3], m[4], m[5]);
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    return window.createImageBitmap(canvas).then(function (turned) {
      canvas.width = canvas.height = 0;
      return turned;
    });
  }

  // The file → { pixels (normalised), thumb }, or a Failure.
  function prepare(file, info, side) {
    var name = file.name;
    var options = { imageOrientation: "from-image", premultiplyAlpha: "none", colorSpaceConversion: "none" };
    var decoded = window.createImageBitmap(file, options);
    if (info.kind === "webp" && info.orientation !== 1) {
      decoded = Promise.all([decoded, browserTurnsWebp()]).then(function (both) {
        return both[1] ? both[0] : upright(both[0], info.orientation);
      });
    }
    return decoded.then(function (bitmap) {
      var big = tooLarge(name, bitmap.width, bitmap.height);
      if (big) { bitmap.close(); throw big; }
      try {
        var rgb = modelPixels(bitmap, info, side);
        return { rgb: rgb.data, pixels: normalised(rgb), thumb: thumbnail(bitmap) };
      } finally {
        bitmap.close();
      }
    }, function () {
      throw new Failure(info.kind === "heic" ? "query_err_heic" : "query_err_not_image", { name: name });
    });
  }

  // ---- the answer, as `dinoclust query` gives it -------------------------------------------
  function place(index, feature) {
    var dim = index.dim, n = index.n, q = new Float64Array(dim), norm = 0, j;
    for (j = 0; j < dim; j++) { norm += feature[j] * feature[j]; }
    norm = Math.sqrt(norm) || 1;
    for (j = 0; j < dim; j++) { q[j] = feature[j] / norm; }
    var best = [];  // the TOP highest cosines, highest first; ties: the lower index first
    for (var r = 0, base = 0; r < n; r++, base += dim) {
      var s = 0;
      for (j = 0; j < dim; j++) { s += q[j] * index.vectors[base + j]; }
      s *= index.scales[r];
      if (best.length < TOP || s > best[best.length - 1].cosine) {
        var at = best.length;
        while (at > 0 && best[at - 1].cosine < s) { at--; }
        best.splice(at, 0, { index: r, cosine: s });
        if (best.length > TOP) { best.pop(); }
      }
    }
    var coords = new Float64Array(index.d);
    for (var c = 0; c < index.d; c++) {
      var v = 0;
      for (j = 0; j < dim; j++) { v += (feature[j] - index.mean[j]) * index.components[c * dim + j]; }
      coords[c] = v;
    }
    var clusters = {};
    Object.keys(index.clusterings).forEach(function (k) {
      var cl = index.clusterings[k], nearest = -1, distance = Infinity;
      for (var g = 0; g < Number(k); g++) {
        var d2 = 0;
        for (var a = 0; a < index.d; a++) {
          var diff = coords[a] - cl.centres[g * index.d + a];
          d2 += diff * diff;
        }
        if (d2 < distance) { distance = d2; nearest = g; }
      }
      clusters[k] = { cluster: nearest, distance: Math.sqrt(distance), typical: cl.typical[nearest] };
    });
    return { top: best, coords: coords, clusters: clusters };
  }

  // ---- the page ------------------------------------------------------------------------------
  function make(_data, h) {
    function similar(answer) {
      var box = h.el("section", "neighbours query-similar");
      box.appendChild(h.el("h3", "neighbours-title query-similar-title", h.t("query_similar")));
      var row = box.appendChild(h.el("div", "neighbour-strip"));
      answer.top.forEach(function (n) {
        var button = h.neighbourTile(n.index, n.cosine);
        button.setAttribute("data-query-neighbour", String(n.index));
        button.setAttribute("data-query-similarity", n.cosine.toFixed(4));
        row.appendChild(button);
      });
      return box;
    }

    function fit(where) {
      var typical = where.typical || [0, 0];
      return where.distance <= typical[0] ? "core" : where.distance <= typical[1] ? "typical" : "outlier";
    }

    // One photo's line for k: its cluster (with the cluster's colour), distance and range.
    function describe(item, entry, k) {
      var line = item.querySelector(".query-where");
      var where = entry.answer.clusters[String(k)];
      line.textContent = "";
      if (!where) { return; }
      var typical = where.typical || [0, 0];
      var swatch = line.appendChild(h.el("span", "swatch"));
      swatch.style.background = h.colour(where.cluster);
      var open = line.appendChild(h.el("button", "query-cluster", h.t("query_cluster", { k: k, c: where.cluster })));
      open.type = "button";
      open.title = h.t("strip_open", { c: where.cluster });
      open.addEventListener("click", function () { ns.openCluster(where.cluster); });
      line.appendChild(h.el("span", "query-distance", " · " + h.t("query_distance",
        { d: where.distance.toFixed(3), p50: typical[0].toFixed(3), p90: typical[1].toFixed(3) })));
      var verdict = fit(where);
      line.appendChild(h.el("span", "query-fit query-fit-" + verdict, " · " + h.t("query_fit_" + verdict)));
      item.setAttribute("data-query-k", String(k));
      item.setAttribute("data-query-cluster", String(where.cluster));
      item.setAttribute("data-query-distance", where.distance.toFixed(6));
      item.setAttribute("data-query-fit", verdict);
    }

    function render(k) {
      list.textContent = "";
      answers.forEach(function (entry, i) {
        var item = h.el("li", "query-result");
        item.setAttribute("data-query-photo", String(i));
        if (entry.failure) {
          item.classList.add("query-error");
          item.setAttribute("data-query-error", entry.failure.key.replace("query_err_", ""));
          item.appendChild(h.el("p", "query-message", h.t(entry.failure.key, entry.failure.args)));
          list.appendChild(item);
          return;
        }
        var head = item.appendChild(h.el("div", "query-head"));
        if (entry.thumb) { head.appendChild(entry.thumb); }
        var text = head.appendChild(h.el("div", "query-text"));
        text.appendChild(h.el("p", "query-name", entry.name));
        text.appendChild(h.el("p", "query-where"));
        describe(item, entry, k);
        item.appendChild(similar(entry.answer));
        list.appendChild(item);
      });
      say();
    }

    function say() {
      var placed = answers.filter(function (e) { return e.answer; }).length;
      status.textContent = answers.length ? h.t("query_done", { m: u.num(placed), n: u.num(answers.length) }) : "";
    }

    // ---- the 3D view: the photos as a sixth trace, put back after every full redraw --------
    var bound = false;
    function trace() {
      var placed = answers.filter(function (e) { return e.answer; });
      var xyz = [0, 1, 2].map(function (a) {
        return placed.map(function (e) { return e.answer.coords.length > a ? e.answer.coords[a] : 0; });
      });
      return { type: "scatter3d", mode: "markers", name: "query", uid: "query", showlegend: false,
               x: xyz[0], y: xyz[1], z: xyz[2],
               text: placed.map(function (e) { return h.plotText(h.t("query_point", { name: e.name })); }),
               hovertemplate: "%{text}<extra></extra>",
               marker: { size: 9, color: "#D62728", symbol: "diamond", line: { width: 2, color: "#000000" } } };
    }

    function queryTrace(div) {
      for (var i = 0; div.data && i < div.data.length; i++) { if (div.data[i].uid === "query") { return i; } }
      return -1;
    }

    function mark() {
      var div = ns.plot.div;
      if (!state.plotted || typeof window.Plotly === "undefined" || !div.data) { return Promise.resolve(); }
      if (!bound && typeof div.on === "function") {
        bound = true;
        div.on("plotly_afterplot", function () {  // Plotly.react (a new language) drops it
          if (answers.length && queryTrace(div) < 0) { mark(); }
        });
      }
      var at = queryTrace(div), t = trace();
      if (at < 0) { return window.Plotly.addTraces(div, t); }
      return window.Plotly.restyle(div, { x: [t.x], y: [t.y], z: [t.z], text: [t.text] }, [at]);
    }

    // ---- a pick or a drop ---------------------------------------------------------------------
    // One photo: inspect, load the model (the first time), prepare, embed, place.
    function one(file, entry) {
      return inspect(file).then(function (info) {
        return load().then(function (model) {
          return prepare(file, info, model.index.side).then(function (prepared) {
            entry.thumb = prepared.thumb;
            entry.rgb = prepared.rgb;  // the 224 × 224 RGB the model saw (tests compare it)
            var started = performance.now();
            var tensor = new window.ort.Tensor("float32", prepared.pixels, [1, 3, SIZE, SIZE]);
            return model.session.run({ pixels: tensor }).then(function (out) {
              timings.embed.push(performance.now() - started);
              entry.answer = place(model.index, out.embedding.data);
            });
          });
        }, function (error) {  // no model: the photos after this one are not tried
          throw new Failure("query_err_load", { error: String((error && error.message) || error) });
        });
      }).catch(function (error) {
        entry.failure = error instanceof Failure ? error : new Failure("query_err_embed",
          { name: file.name, error: String((error && error.message) || error) });
        if (entry.failure.key === "query_err_load") { throw entry.failure; }
      });
    }

    function run(files) {
      files = Array.prototype.slice.call(files || []);
      if (!files.length) { return Promise.resolve(); }
      answers = files.map(function (f) { return { name: f.name, answer: null, failure: null, thumb: null }; });
      list.textContent = "";
      setState("working");
      var chain = Promise.resolve();
      files.forEach(function (file, i) {
        chain = chain.then(function () {
          status.textContent = u.t("query_working", { name: file.name });
          return one(file, answers[i]);
        });
      });
      return chain.catch(function () { return null; }).then(function () {
        answers = answers.filter(function (e) { return e.answer || e.failure; });
        render(state.shown || state.k);
        setState(answers.some(function (e) { return e.answer; }) ? "done" : "error");
        return mark();
      });
    }

    input.addEventListener("change", function () {
      state.pending = run(input.files).then(function () { input.value = ""; });
    });
    ["dragenter", "dragover"].forEach(function (type) {
      section.addEventListener(type, function (event) {
        event.preventDefault();
        drop.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      section.addEventListener(type, function () { drop.classList.remove("dragging"); });
    });
    section.addEventListener("drop", function (event) {
      event.preventDefault();
      state.pending = run(event.dataTransfer && event.dataTransfer.files);
    });

    ns.query = { run: run, answers: function () { return answers; }, timings: timings };
    setState("idle");

    return {
      update: function (k) {
        list.querySelectorAll("li.query-result:not(.query-error)").forEach(function (item) {
          describe(item, answers[Number(item.getAttribute("data-query-photo"))], k);
        });
        return null;
      },
      relabel: function () {
        list.querySelectorAll(".query-similar-title").forEach(function (t) { t.textContent = h.t("query_similar"); });
        list.querySelectorAll("li.query-error").forEach(function (item) {
          var entry = answers[Number(item.getAttribute("data-query-photo"))];
          item.querySelector(".query-message").textContent = h.t(entry.failure.key, entry.failure.args);
        });
        list.querySelectorAll(".neighbour").forEach(function (b) {
          var image = data.images[Number(b.getAttribute("data-query-neighbour"))];
          var s = Number(b.getAttribute("data-query-similarity")).toFixed(2);
          b.title = h.t("neighbour_tip", { path: image.path, s: s });
          b.querySelector(".neighbour-sim").textContent = h.t("neighbour_sim", { s: s });
        });
        say();
        if (answers.length) { mark(); }
      }
    };
  }

  window.dinoclustViews = (window.dinoclustViews || []).concat([make]);
})();
