"""The site: page data, render, single file, exports, size budget, the output folder."""
