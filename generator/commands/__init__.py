"""The commands: each composes the one stage path with its source and sinks."""
