"""Rebuilding the serving files shipped in `classifier/assets` with torch (`taskrouter assets build`): the ONNX export
and the static table's distillation."""
