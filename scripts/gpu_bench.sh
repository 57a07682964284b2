#!/usr/bin/env bash
# GPU benchmark: `genre-lab train experiment=gpu_bench` (DistilBERT-base-sized, random weights, bf16) on
# 54,000 rows x 3 epochs with one validation pass per epoch; texts from ../shared/data repeated to 54,000
# rows (real length distribution). Prints the fit's wall time and samples/s (also in <run>/timing.json).
# The notebook took 1,781 s for this on a Colab GPU.
#
#   bash scripts/gpu_bench.sh [overrides…]          # on a GPU machine (GPU_BENCH_ROWS=5400 for a tenth)
#   bash scripts/gpu_bench.sh --smoke [overrides…]  # a few steps of a tiny model on CPU (the test suite runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
SOURCE=${GENRE_LAB_SHARED_DATA:-../shared/data}/tmdb_movies_10genre.csv
WORK=${GPU_BENCH_DIR:-$(mktemp -d -t gpu_bench.XXXXXX)}
ROWS=${GPU_BENCH_ROWS:-54000}
ARGS=()
if [[ "${1:-}" == "--smoke" ]]; then
    shift
    # the bundled sample when the real data is absent: the smoke run checks the plumbing, not the speed
    [[ -f "$SOURCE" ]] || SOURCE=genre_lab/resources/sample_movies.csv
    ROWS=200
    ARGS=(model=tiny model.backbone=tiny data.tokenizer=tiny '~model.backbone_config' data.batch_size=16 data.eval_batch_size=32
          data.num_workers=0 trainer.max_epochs=1 trainer.accelerator=cpu trainer.precision=32-true)
fi
[[ -f "$SOURCE" ]] || { echo "gpu_bench: $SOURCE not found; set GENRE_LAB_SHARED_DATA" >&2; exit 2; }

"$PYTHON" scripts/repeat_csv.py "$SOURCE" "$ROWS" "$WORK/movies.csv"
"$PYTHON" -m genre_lab train experiment=gpu_bench data.train_csv="$WORK/movies.csv" \
    paths.cache_dir="$WORK/cache" hydra.run.dir="$WORK/run" '~callbacks.progress_bar' "${ARGS[@]}" "$@"
"$PYTHON" - "$WORK/run" <<'PY'
import json, sys
from genre_lab.runs.layout import RunLayout
run = RunLayout(sys.argv[1])
t, m = json.loads(run.timing.read_text()), run.read_metrics()
print(f"gpu_bench: device {t['device']}, precision {t['precision']}")
print(f"gpu_bench: fit {t['fit_seconds']:.1f} s for {t['train_samples']} training samples "
      f"({t['epochs']} epochs, validation included): {t['train_samples_per_s']:.0f} samples/s; "
      f"val/top1_accuracy {m['val/top1_accuracy']:.3f}")
PY
