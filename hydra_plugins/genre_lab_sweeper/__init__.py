"""genre_lab's Optuna sweeper as a Hydra plugin (``hparams_search=optuna``); the logic is in genre_lab.sweeps."""
