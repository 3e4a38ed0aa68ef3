/* dinoclust grid: a section per cluster, its members nearest the centre first. Figures are made
   only when shown (each cluster shows its first FIRST images and a "show more" button), and a
   click in the plot pages the cluster to that image instead of making every figure before it. */
(function () {
  "use strict";

  var ns = window.dinoclust, data = ns.data, u = ns.util, state = ns.state;
  var i18n = window.dinoclustI18n;
  var FIRST = 60;   // thumbnails shown per cluster before "show more"
  var MORE = 240;   // thumbnails added per "show more"; also the page a click jumps to
  var TYPICAL_SHARE = 0.2;  // per cluster of 3 or more: the closest fifth typical, farthest atypical
  var LISTED = 10;  // files named in a duplicate badge's tooltip
  var grid = document.getElementById("grid");
  var t = u.t;

  // The duplicate badges of an image: each kind whose group it is in, and up to LISTED others.
  function duplicates(index) {
    var kinds = [["exact", "identical", "identical_tip"]];
    // Untrained features make nearly every pair look alike (the banner says so): no near badges.
    if (!data.model.random_weights) { kinds.push(["near", "near_dup", "near_tip"]); }
    var out = [];
    kinds.forEach(function (kind) {
      var g = data.dupGroups[kind[0]][index];
      if (g < 0) { return; }
      var group = data.duplicates[kind[0]][g];
      var others = [];
      for (var j = 0; j < group.length && others.length <= LISTED; j++) {
        if (group[j] !== index) { others.push(data.images[group[j]].path); }
      }
      var more = group.length - 1 - LISTED;
      var files = others.slice(0, LISTED).join(", ") + (more > 0 ? ", … (+" + more + ")" : "");
      out.push({ kind: kind, files: files });
    });
    return out;
  }

  function badgeText(figure) {
    duplicates(Number(figure.getAttribute("data-image"))).forEach(function (d) {
      var badge = figure.querySelector(".badge.dup-" + d.kind[0]);
      badge.textContent = t(d.kind[1]);
      badge.title = t(d.kind[2], { files: d.files });
    });
  }

  // A figure per image, made the first time it is shown; switching k only moves it.
  var figures = [];
  var onOpen = function () {};
  function figureFor(index) {
    if (figures[index]) { return figures[index]; }
    var image = data.images[index];
    var figure = u.el("figure", "thumb");
    figure.setAttribute("data-image", String(index));
    var open = u.el("button", "thumb-open");
    open.type = "button";
    var img = u.el("img");
    img.src = image.thumb;
    img.alt = image.path;
    img.loading = "lazy";
    img.decoding = "async";
    img.width = image.thumb_width;
    img.height = image.thumb_height;
    img.setAttribute("data-index", String(index));
    open.appendChild(img);
    open.addEventListener("click", function () { onOpen(index); });
    var badges = u.el("span", "badges");
    badges.appendChild(u.el("span", "badge role"));
    var dups = duplicates(index);
    dups.forEach(function (d) { badges.appendChild(u.el("span", "badge dup-" + d.kind[0])); });
    if (dups.length) { figure.setAttribute("data-duplicate", "true"); }
    figure.appendChild(open);
    figure.appendChild(badges);
    figure.appendChild(u.el("figcaption", null, u.baseName(image.path)));
    badgeText(figure);
    figures[index] = figure;
    return figure;
  }

  // Per k: each cluster's members nearest the centre first, and each image's role and rank.
  var arrangements = {};
  function arrange(k, clustering) {
    if (arrangements[k]) { return arrangements[k]; }
    var n = data.images.length, labels = clustering.labels, d = clustering.distances;
    var members = clustering.sizes.map(function () { return []; });
    for (var i = 0; i < n; i++) { members[labels[i]].push(i); }
    var roles = new Array(n), rank = new Int32Array(n);
    members.forEach(function (list) {
      list.sort(function (a, b) { return (d[a] - d[b]) || (a - b); });
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

  var groups = [];
  var current = null;  // { k, clustering, arranged }
  function render(k, clustering) {
    var arranged = arrange(k, clustering);
    current = { k: k, clustering: clustering, arranged: arranged };
    groups = clustering.sizes.map(function (size, cluster) {
      var section = u.el("section", "cluster");
      section.setAttribute("data-cluster", String(cluster));
      var heading = u.el("h3", "cluster-heading", size === 1 ? t("cluster_heading_one", { c: cluster })
        : size === 0 ? t("cluster_heading_empty", { c: cluster })
        : t("cluster_heading", { c: cluster, n: u.num(size) }));
      var swatch = u.el("span", "swatch");
      swatch.style.background = u.colour(cluster);
      heading.prepend(swatch);
      heading.tabIndex = -1;  // open(cluster) moves the focus here
      section.appendChild(heading);
      var first = section.appendChild(u.el("button", "show-first"));
      first.type = "button";
      first.hidden = true;
      var thumbs = section.appendChild(u.el("div", "thumbs"));
      var more = section.appendChild(u.el("button", "show-more"));
      more.type = "button";
      var group = { section: section, thumbs: thumbs, more: more, first: first, start: 0, shown: 0,
                    members: arranged.members[cluster] };
      more.addEventListener("click", function () { reveal(group, group.shown + MORE); });
      first.addEventListener("click", function () { page(group, 0); });
      reveal(group, FIRST);
      return group;
    });
    grid.textContent = "";
    groups.forEach(function (group) { grid.appendChild(group.section); });
  }

  function reveal(group, count) {
    var c = current;
    var upTo = Math.min(count, group.members.length);
    var fragment = document.createDocumentFragment();
    for (var r = group.shown; r < upTo; r++) {
      var index = group.members[r];
      fragment.appendChild(decorate(index, c.clustering, c.arranged.roles[index]));
    }
    group.thumbs.appendChild(fragment);
    group.shown = upTo;
    var left = group.members.length - upTo;
    group.more.hidden = left <= 0;
    group.more.textContent = t("show_more", { n: Math.min(left, MORE) });
    group.first.hidden = group.start === 0;
    group.first.textContent = t("show_first", { n: Math.min(FIRST, group.members.length) });
  }

  // The cluster from `start` on: a page of MORE images (or the first FIRST from the start).
  function page(group, start, atLeast) {
    group.thumbs.textContent = "";
    group.start = group.shown = start;
    reveal(group, Math.max(start + (start ? MORE : FIRST), atLeast || 0));
  }

  // The grid at the image: its cluster paged to it when it is not shown yet; it is highlighted.
  function show(index) {
    var c = current;
    var group = groups[c.clustering.labels[index]];
    var r = c.arranged.rank[index];
    if (r < group.start || r >= group.shown) {
      page(group, r < FIRST ? 0 : Math.floor(r / MORE) * MORE, r + 1);
    }
    highlight(index);
    var figure = figureFor(index);
    figure.scrollIntoView({ block: "center" });
    figure.querySelector("button").focus({ preventScroll: true });
  }

  // A cluster's full grid, "opened" from its strip, size bar or legend entry: from its first image,
  // scrolled to the top of the view (below the sticky controls), its heading focused.
  function open(cluster) {
    var group = groups[cluster];
    if (!group) { return null; }
    grid.querySelectorAll("section.cluster[data-opened]").forEach(function (s) {
      s.removeAttribute("data-opened");
    });
    if (group.start !== 0) { page(group, 0); }
    group.section.setAttribute("data-opened", "true");
    group.section.scrollIntoView({ block: "start" });
    group.section.querySelector("h3").focus({ preventScroll: true });
    return group.section;
  }

  function highlight(index) {
    grid.querySelectorAll("figure.highlight").forEach(function (f) { f.classList.remove("highlight"); });
    figureFor(index).classList.add("highlight");
  }

  function relabel() { figures.forEach(function (figure) { if (figure) { badgeText(figure); } }); }

  ns.grid = { render: render, show: show, open: open, highlight: highlight, relabel: relabel,
              arranged: function (k) { return arrangements[k]; },
              onOpen: function (f) { onOpen = f; } };
})();
