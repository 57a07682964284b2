"""The notebook's recipe vs genre_lab's default on one CSV, split and backbone: `genre-lab bench` as a script.

    python scripts/benchmark.py                      # MiniLM on ../shared/data/tmdb_movies_10genre.csv
    python scripts/benchmark.py bench.quality_epochs=1
    python scripts/benchmark.py model=tiny data=sample bench.repeats=2   # a quick look

Any `genre-lab bench` override works; see conf/bench.yaml.
"""

import sys

from genre_lab.cli import main

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]])
