"""Model bundles: manifests, ONNX Runtime sessions, image/text encoders and captioners."""
