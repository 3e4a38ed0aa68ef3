/* dinoclust: each image's distance to its cluster centre at k = {{ k }} (payload.page_distances).
   The page adds this script when it first shows this k, so a large collection's page loads
   without the distances of every k. */
window.dinoclustDistances = window.dinoclustDistances || {};
window.dinoclustDistances[{{ k|tojson }}] = {{ distances|tojson }};
