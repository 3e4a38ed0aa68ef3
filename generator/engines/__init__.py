"""Engines schedule the mapper over a collection; they differ only in who runs the batches."""
