#!/bin/sh
# Data-parallel training speed on one machine: ptb-medium (2 x 650 LSTM, 10k words, 19.8 M
# parameters, batch 20 x 35, structured dropout p 0.5) trained by sdlstm-lm-mpi as 1 rank x 2
# threads and as 2 ranks x 1 thread, with the 2-rank run's time in MPI_Allreduce and in waiting
# for the other rank as shares of its training steps. One JSON line per run, then a summary.
#
#   make examples-mpi && bench/mpi.sh [STEPS]      (STEPS per run, 40 by default)
#
# The training text is PTB's (its vocabulary sets the output layer); validation and test are
# cut to a few lines, since evaluation is not what this measures.
set -eu
steps=${1:-40}
bin=build/bin/sdlstm-lm-mpi
[ -x "$bin" ] || { echo "bench/mpi.sh: $bin is missing: make examples-mpi" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    mpirun="mpirun --allow-run-as-root --oversubscribe"
else
    mpirun="mpirun --oversubscribe"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ln -s "$PWD/data/ptb/ptb.train.txt" "$tmp/ptb.train.txt"
for s in valid test; do head -n 20 "data/ptb/ptb.$s.txt" > "$tmp/ptb.$s.txt"; done
args="--data $tmp --hidden 650 --embed 650 --layers 2 --batch 20 --bptt 35 --init 0.05 --epochs 1 --max-steps $steps --policy structured --p-nr 0.5"
$mpirun -np 1 --bind-to none "$bin" $args --threads 2 2>/dev/null | tee "$tmp/one.json"
$mpirun -np 2 --bind-to core "$bin" $args --threads 1 2>/dev/null | tee "$tmp/two.json"
python3 - "$tmp/one.json" "$tmp/two.json" <<'PY'
import json, sys
one, two = (json.loads(open(p).read()) for p in sys.argv[1:])
step = two["train_seconds"] / two["steps"]
print(f"ptb-medium, {two['steps']} steps: 1 rank x 2 threads {one['words_per_s']:.0f} words/s, "
      f"2 ranks x 1 thread {two['words_per_s']:.0f} words/s ({two['words_per_s'] / one['words_per_s']:.2f}x); "
      f"2-rank step {step * 1e3:.0f} ms, of which MPI_Allreduce {two['reduce_seconds'] / two['train_seconds']:.1%} "
      f"and waiting for the other rank {two['wait_seconds'] / two['train_seconds']:.1%}")
PY
