"""The Parquet store and the cache."""
