/* dinoclust preview: a larger view of an image in a modal dialog (Escape closes it), with the
   thumbnail by the cursor when a point is hovered. Views may add to the dialog (neighbours.js). */
(function () {
  "use strict";

  var ns = window.dinoclust, data = ns.data, u = ns.util, state = ns.state;
  var i18n = window.dinoclustI18n;
  var t = u.t;

  var mouse = { x: 0, y: 0 };
  var hoverBox = null;
  function track(node) {
    node.addEventListener("mousemove", function (event) { mouse.x = event.clientX; mouse.y = event.clientY; });
  }

  function showHover(index) {
    if (!hoverBox) {
      hoverBox = document.body.appendChild(u.el("div", "hover-thumb"));
      hoverBox.setAttribute("aria-hidden", "true");
      hoverBox.appendChild(u.el("img"));
      hoverBox.appendChild(u.el("span", "hover-name"));
      hoverBox.appendChild(u.el("span", "hover-cluster"));
    }
    var image = data.images[index];
    var img = hoverBox.firstChild;
    img.src = image.thumb;
    img.alt = image.path;
    img.setAttribute("data-index", String(index));
    hoverBox.querySelector(".hover-name").textContent = u.baseName(image.path);
    var cluster = data.clusterings[String(state.shown)].labels[index];
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

  // The dialog: a bar with the name and a corner ×, the image filling the space left, what views
  // add (similar images), and a foot with ← → and Close. The bar and foot never scroll away
  // (style.css: a grid as tall as the screen allows), so × and Close stay in view at any size.
  var dialog = null;
  function button(className, text, onClick) {
    var b = u.el("button", className, text);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  function make() {
    dialog = document.body.appendChild(u.el("dialog", "preview"));
    dialog.id = "preview";
    var bar = dialog.appendChild(u.el("div", "preview-bar"));
    bar.appendChild(u.el("p", "preview-path"));
    bar.appendChild(button("preview-x", "×", function () { dialog.close(); }));
    dialog.appendChild(u.el("img"));
    dialog.appendChild(u.el("p", "preview-info"));
    var foot = dialog.appendChild(u.el("div", "preview-foot"));
    foot.appendChild(button("preview-prev", "←", function () { step(-1); }));
    foot.appendChild(u.el("span", "preview-pos"));
    foot.appendChild(button("preview-next", "→", function () { step(1); }));
    foot.appendChild(button("preview-close", "", function () { dialog.close(); }));
    dialog.addEventListener("click", function (event) { if (event.target === dialog) { dialog.close(); } });
    dialog.addEventListener("keydown", function (event) {
      var tag = (event.target && event.target.tagName) || "";
      if (tag === "INPUT" || event.altKey || event.ctrlKey || event.metaKey) { return; }
      if (event.key === "ArrowLeft") { step(-1); event.preventDefault(); }
      if (event.key === "ArrowRight") { step(1); event.preventDefault(); }
    });
  }

  // ← and →: the image before or after this one in its cluster (nearest the centre first).
  function neighbours(index) {
    var clustering = data.clusterings[String(state.shown)];
    var arranged = ns.grid.arranged(state.shown);
    var members = arranged.members[clustering.labels[index]];
    return { members: members, rank: arranged.rank[index], cluster: clustering.labels[index] };
  }

  function step(by) {
    var at = neighbours(Number(dialog.getAttribute("data-index")));
    var n = at.members.length;
    if (n < 2) { return null; }
    return ns.openPreview(at.members[(at.rank + by + n) % n]);
  }

  // Fills and opens the dialog for `index` at the current k; returns it.
  function open(index) {
    if (!dialog) { make(); }
    var image = data.images[index];
    var clustering = data.clusterings[String(state.shown)];
    var img = dialog.querySelector(":scope > img");
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
    var at = neighbours(index);
    dialog.querySelector(".preview-pos").textContent = t("preview_pos",
      { i: u.num(at.rank + 1), n: u.num(at.members.length), c: at.cluster });
    [[".preview-x", "close"], [".preview-prev", "preview_prev"], [".preview-next", "preview_next"]]
      .forEach(function (pair) {
        var b = dialog.querySelector(pair[0]);
        b.setAttribute("aria-label", t(pair[1]));
        b.title = t(pair[1]);
        b.disabled = pair[0] !== ".preview-x" && at.members.length < 2;
      });
    dialog.querySelector(".preview-close").textContent = t("close");
    if (!dialog.open) { dialog.showModal(); }
    return dialog;
  }

  ns.preview = { open: open, showHover: showHover, hideHover: hideHover, track: track,
                 isOpen: function () { return Boolean(dialog && dialog.open); } };
})();
