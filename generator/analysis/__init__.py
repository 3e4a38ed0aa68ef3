"""PCA, the K-means sweep, metrics, neighbours and duplicates, samples, the streamed passes."""
