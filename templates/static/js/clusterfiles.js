/* dinoclust per-cluster file lists: a button on each cluster of the grid downloads that cluster's
   path,cluster,distance_to_centre (and label) rows as CSV, made in the browser (works offline),
   the same rows as `dinoclust sort` writes to clusters.csv. Registers a view; update(k) runs
   after app.js has drawn the grid for k. */
(function () {
  "use strict";

  function rows(data, clustering, cluster) {
    var header = ["path", "cluster", "distance_to_centre"].concat(data.labels ? ["label"] : []);
    var out = [header];
    clustering.labels.forEach(function (c, i) {
      if (c !== cluster) { return; }
      var row = [data.images[i].path, c, clustering.distances[i]];
      if (data.labels) { row.push(data.labels[i]); }
      out.push(row);
    });
    return out;
  }

  function make(data, h) {
    return {
      update: function (k, clustering) {
        document.querySelectorAll("#grid > section.cluster[data-cluster]").forEach(function (section) {
          var cluster = Number(section.getAttribute("data-cluster"));
          if (!clustering.sizes[cluster]) { return; }
          var button = h.el("button", "cluster-csv", h.t("cluster_csv"));
          button.type = "button";
          button.setAttribute("data-cluster-csv", String(cluster));
          button.title = h.t("cluster_csv_tip", { c: cluster, k: k });
          button.addEventListener("click", function () {
            var name = "cluster_" + cluster + "_k" + k + ".csv";
            h.save(h.csvText(rows(data, clustering, cluster)), name, "text/csv;charset=utf-8");
          });
          section.querySelector("h3").appendChild(button);
        });
        return null;
      }
    };
  }

  window.dinoclustViews = (window.dinoclustViews || []).concat([make]);
})();
