"""Leaf layer: the config schema, the wire protocol, the FGRPO rule and errors. Imports nothing else of fgrpo."""
