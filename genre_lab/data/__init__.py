"""Data: CSV tables, the label space, sampling/splitting and the LightningDataModule."""
