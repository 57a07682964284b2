"""The machinery of `genre-lab bench` (genre_lab/bench.py, the command): ``measuring`` times training steps and
predictions and samples peak memory, ``notebook_recipe`` is the seed notebook's HF-Trainer recipe and
``genre_lab_recipe`` ours, both built on the same rows, labels and backbone, and ``report`` prints their figures
side by side and assembles ``bench.json``. ``http_load`` runs ``genre-lab serve`` as a child process and loads
it from loopback clients (the deployment benchmark, scripts/bench_deploy.py). It builds genre_lab's recipe with
the builders `genre-lab train` uses (``model.build``, ``framework.trainer``) and imports no command.
"""
