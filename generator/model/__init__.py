"""The model: load, preprocess, embed; backends (torch, OpenVINO). The only torch importer."""
