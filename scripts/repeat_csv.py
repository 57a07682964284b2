"""Repeat a movie CSV's rows (new unique ids) up to N rows: benchmark data with the real length distribution.

    python scripts/repeat_csv.py ../shared/data/tmdb_movies_10genre.csv 54000 /tmp/movies54k.csv
"""

import argparse
from pathlib import Path

import pandas as pd


def repeat_rows(source: Path, rows: int, target: Path) -> None:
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    copies = -(-rows // len(frame))
    out = pd.concat([frame] * copies, ignore_index=True).iloc[:rows].copy()
    out["id"] = [f"r{i}" for i in range(len(out))]
    target.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(target, index=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("rows", type=int)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    repeat_rows(args.source, args.rows, args.target)
    print(f"{args.target}: {args.rows} rows from {args.source}")
