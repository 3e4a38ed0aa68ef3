/* dinoclust strips: under the slider, a row per cluster with its colour, its size as a bar and its
   most typical images (nearest the centre first), so that the page opens on the pictures. A
   click on a strip's heading or bar opens the cluster's full grid (grid.js open); on an image,
   its preview. The find box (filter.js) narrows each strip to its matches, says how many match
   per cluster and rings them in the plot. */
(function () {
  "use strict";

  var ns = window.dinoclust, data = ns.data, u = ns.util, state = ns.state;
  var t = u.t;
  var STRIP = 16;   // images made per strip; the strip scrolls sideways past those that fit
  var EAGER = 4;    // the first strips' images load at once: they are the first screen
  var RING_DELAY = 150;  // ms of quiet typing before the plot is restyled
  var list = document.getElementById("strips");
  var input = document.getElementById("find");
  var result = document.getElementById("find-result");
  var current = null;  // { k, clustering, arranged }
  var found = null;    // { query, indices, mask } while the find box has words

  function thumb(index, cluster) {
    var image = data.images[index];
    var button = u.el("button", "strip-thumb");
    button.type = "button";
    button.title = image.path;
    button.setAttribute("data-image", String(index));
    var img = u.el("img");
    img.src = image.thumb;
    img.alt = image.path;
    img.width = image.thumb_width;
    img.height = image.thumb_height;
    img.decoding = "async";
    img.setAttribute("data-index", String(index));
    if (cluster >= EAGER) { img.loading = "lazy"; }
    button.appendChild(img);
    button.addEventListener("click", function () { ns.openPreview(index); });
    return button;
  }

  function heading(cluster, size, total, largest) {
    var head = u.el("button", "strip-open");
    head.type = "button";
    head.title = t("strip_open", { c: cluster });
    var swatch = u.el("span", "swatch");
    swatch.style.background = u.colour(cluster);
    head.appendChild(swatch);
    head.appendChild(u.el("span", "strip-name", size === 1 ? t("cluster_heading_one", { c: cluster })
      : size === 0 ? t("cluster_heading_empty", { c: cluster })
      : t("cluster_heading", { c: cluster, n: u.num(size) })));
    var track = head.appendChild(u.el("span", "bar-track strip-bar"));
    var bar = track.appendChild(u.el("span", "bar"));
    bar.style.width = (largest ? 100 * size / largest : 0) + "%";
    bar.style.background = u.colour(cluster);
    var pct = total ? Math.round(1000 * size / total) / 10 : 0;
    head.appendChild(u.el("span", "strip-count", pct + " %"));
    head.addEventListener("click", function () { ns.openCluster(cluster); });
    return head;
  }

  // A strip's images: the cluster's first STRIP (or, while finding, its first STRIP matches).
  function fill(item, cluster) {
    var members = current.arranged.members[cluster];
    var row = item.querySelector(".strip-thumbs");
    var shown = [], matched = 0;
    for (var r = 0; r < members.length; r++) {
      if (found && !found.mask[members[r]]) { continue; }
      matched += 1;
      if (shown.length < STRIP) { shown.push(members[r]); }
    }
    row.textContent = "";
    shown.forEach(function (index) { row.appendChild(thumb(index, cluster)); });
    var left = matched - shown.length;
    if (left > 0) {
      var more = row.appendChild(u.el("button", "strip-more", t("strip_more", { n: u.num(left) })));
      more.type = "button";
      more.addEventListener("click", function () { ns.openCluster(cluster); });
    }
    var count = item.querySelector(".strip-matches");
    count.hidden = !found;
    count.textContent = found ? t("strip_matches", { m: u.num(matched), n: u.num(members.length) }) : "";
    item.setAttribute("data-matches", found ? String(matched) : "");
    item.classList.toggle("no-match", Boolean(found) && matched === 0);
  }

  function render(k, clustering) {
    current = { k: k, clustering: clustering, arranged: ns.grid.arranged(k) };
    // a sampled report's strips show the sample's images but count every row, as the sizes do
    var sizes = clustering.sizes_all || clustering.sizes;
    var total = sizes.reduce(function (a, b) { return a + b; }, 0);
    var largest = Math.max.apply(null, sizes);
    list.textContent = "";
    sizes.forEach(function (size, cluster) {
      var item = u.el("li", "strip");
      item.setAttribute("data-cluster", String(cluster));
      item.setAttribute("data-size", String(size));
      item.style.borderLeftColor = u.colour(cluster);
      item.appendChild(heading(cluster, size, total, largest));
      item.appendChild(u.el("span", "strip-matches hint"));
      item.appendChild(u.el("div", "strip-thumbs"));
      fill(item, cluster);
      list.appendChild(item);
    });
    say();
  }

  function say() {
    if (!found) { result.textContent = ""; return; }
    result.textContent = found.indices.length
      ? t("find_result", { m: u.num(found.indices.length), n: u.num(data.images.length) }) +
        (state.foundCapped ? " " + t("find_ring_some", { r: u.num(state.found.length) }) : "")
      : t("find_none");
  }

  // The find box's words: strips, counts and the plot's rings follow (the plot after a pause).
  var timer = null;
  function find(query) {
    var indices = ns.find.match(query);
    found = indices ? { query: query, indices: indices, mask: ns.find.mask(indices) } : null;
    document.body.setAttribute("data-find", found ? String(indices.length) : "");
    state.foundCapped = false;  // until the plot says otherwise
    if (current) {
      list.querySelectorAll("li.strip").forEach(function (item) {
        fill(item, Number(item.getAttribute("data-cluster")));
      });
    }
    say();
    if (timer !== null) { window.clearTimeout(timer); }
    return new Promise(function (resolve) {
      timer = window.setTimeout(function () {
        timer = null;
        var ringed = ns.plot.found(found ? found.mask : null);
        say();
        resolve(ringed);
      }, RING_DELAY);
    });
  }

  if (input) {
    input.addEventListener("input", function () { state.pending = find(input.value); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && input.value) {
        input.value = "";
        state.pending = find("");
        event.preventDefault();
      }
    });
  }

  // A find asked for from elsewhere (a label's legend entry): the box shows the words.
  function setQuery(query) {
    if (input) { input.value = query; }
    return find(query);
  }

  ns.strips = { render: render, find: setQuery, relabel: say };
})();
