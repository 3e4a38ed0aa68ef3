/* dinoclust: every image's most similar images, packed (payload.page_neighbours). The page adds
   this script when the first preview opens, so a large collection's page loads without it. */
window.dinoclustNeighbours = {{ neighbours|tojson }};
