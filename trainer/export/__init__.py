"""Models as self-contained ONNX files, so other programs can classify without FaceComic or PyTorch."""
