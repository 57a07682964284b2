"""Model: backbone loading and the GenreClassifier LightningModule."""
