"""What answers a query, with no torch: the cascade and its stages, the embedders, the shipped serving files
(`assets`) and the verified files derived from them and cached (`filecache`). Imports nothing from `training` or
`building` (tests/unit/test_import_graph.py)."""
