"""Serving: the ONNX runtime (onnxruntime, tokenizers and NumPy only: loads a ``genre-lab export format=onnx`` folder
and gives genres and probabilities, with no torch, Lightning, transformers, Hydra or pandas) and the HTTP app on it."""
