/* dinoclust experiment report panel: shows report.md (generator/experiment.py, one text per
   language, inline in the page) and downloads it, in the reader's language. The Markdown is the
   small subset experiment.py writes (headings, paragraphs, lists, tables, quotes); it becomes DOM
   nodes whose text is set with textContent, so nothing in it can be markup. */
(function () {
  "use strict";

  var node = document.getElementById("dinoclust-report-md");
  var texts = node ? JSON.parse(node.textContent) : {};

  // experiment.py's md(): backslash escapes, and &lt; &gt; &amp; for the characters of HTML
  var ENTITIES = { lt: "<", gt: ">", amp: "&" };
  function unescape(s) {
    return s.replace(/\\(.)|&(lt|gt|amp);/g, function (all, escaped, entity) {
      return entity ? ENTITIES[entity] : escaped;
    });
  }

  // Cells split at | not escaped with a backslash.
  function cells(line) {
    var out = [], cur = "";
    var body = line.trim().replace(/^\|/, "").replace(/\|$/, "");
    for (var i = 0; i < body.length; i++) {
      if (body[i] === "\\" && i + 1 < body.length) { cur += body[i] + body[i + 1]; i++; }
      else if (body[i] === "|") { out.push(cur); cur = ""; }
      else { cur += body[i]; }
    }
    out.push(cur);
    return out.map(function (c) { return unescape(c.trim()); });
  }

  function table(lines, h) {
    var wrap = h.el("div", "table-scroll");
    var t = wrap.appendChild(h.el("table", "num-table report-table"));
    var head = t.appendChild(h.el("thead")).appendChild(h.el("tr"));
    cells(lines[0]).forEach(function (c) { head.appendChild(h.el("th", null, c)).scope = "col"; });
    var body = t.appendChild(h.el("tbody"));
    lines.slice(2).forEach(function (line) {
      var tr = body.appendChild(h.el("tr"));
      cells(line).forEach(function (c, i) { tr.appendChild(h.el(i ? "td" : "th", null, c)); });
    });
    return wrap;
  }

  // Blocks are separated by blank lines; a block's first characters say what it is.
  function render(markdown, target, h) {
    target.textContent = "";
    markdown.split(/\n{2,}/).forEach(function (block) {
      var lines = block.split("\n").filter(function (l) { return l.length; });
      if (!lines.length) { return; }
      var first = lines[0];
      var heading = /^(#{1,3}) (.*)$/.exec(first);
      if (heading) {
        target.appendChild(h.el("h" + (heading[1].length + 2), null, unescape(heading[2])));
      } else if (first[0] === "|") {
        target.appendChild(table(lines, h));
      } else if (first[0] === ">") {
        var quote = target.appendChild(h.el("blockquote", "report-prompt"));
        lines.join("\n").split(/\n>\s*(?:\n|$)/).forEach(function (para) {
          var text = para.split("\n").map(function (l) { return l.replace(/^>\s?/, ""); }).join(" ");
          if (text.trim()) { quote.appendChild(h.el("p", null, unescape(text))); }
        });
      } else if (/^(- |\d+\. )/.test(first)) {
        target.appendChild(list(lines, h));
      } else {
        target.appendChild(h.el("p", null, unescape(lines.join(" "))));
      }
    });
  }

  // "- " or "1. " items; lines indented by two spaces are a nested list of the item above.
  function list(lines, h) {
    var root = h.el(/^\d+\. /.test(lines[0]) ? "ol" : "ul");
    var item = null, nested = null;
    lines.forEach(function (line) {
      var text = unescape(line.replace(/^\s*(- |\d+\. )/, ""));
      if (/^ {2}/.test(line) && item) {
        if (!nested) { nested = item.appendChild(h.el("ul")); }
        nested.appendChild(h.el("li", null, text));
      } else {
        item = root.appendChild(h.el("li", null, text));
        nested = null;
      }
    });
    return root;
  }

  function download(text, h) { h.save(text, "report.md", "text/markdown;charset=utf-8"); }

  function make(data, h) {
    var body = document.getElementById("report-body");
    var button = document.getElementById("download-report");
    var shown = null;
    function current() { return texts[h.state.lang] || ""; }
    function show() {
      if (!body || shown === h.state.lang) { return; }
      shown = h.state.lang;
      body.setAttribute("data-lang", shown);
      render(current(), body, h);
    }
    if (button) { button.addEventListener("click", function () { download(current(), h); }); }
    show();
    return { relabel: function () { shown = null; show(); }, update: function () { return null; } };
  }

  window.dinoclustViews = (window.dinoclustViews || []).concat([make]);
})();
