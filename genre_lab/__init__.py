"""genre_lab: fine-tune transformer encoders to classify movie genres (Hydra + PyTorch Lightning)."""

from genre_lab.config_dir import register_resolvers

__version__ = "0.1.0"

register_resolvers()
