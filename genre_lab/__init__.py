"""genre_lab: fine-tune transformer encoders to classify movie genres (Hydra + PyTorch Lightning)."""

__version__ = "0.1.0"

try:
    from genre_lab.config_dir import register_resolvers
except ModuleNotFoundError as missing:
    # Where only the ONNX runtime's packages are installed (genre_lab/serving: onnxruntime, tokenizers, NumPy) there
    # is no OmegaConf, and no Hydra config to compose: nothing needs the resolvers there.
    if missing.name != "omegaconf":
        raise
else:
    register_resolvers()
