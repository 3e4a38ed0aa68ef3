"""Finding and decoding the inputs: discover, manifest, labels, imaging."""
