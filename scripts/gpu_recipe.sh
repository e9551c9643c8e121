#!/usr/bin/env bash
# The bundled model's three-stage recipe (MODEL_CARD.md, *Recipe*) on a CUDA GPU with bf16 autocast, for a
# session that is lent the device machine: the time and accuracy of the default recipe with AMP that the
# issue *Speed and scale* asks for, and stage 1 and 2 models to build on (issue *Real photos*).
#
#   bash scripts/gpu_recipe.sh prepare   # here, once: FER2013 as one pack and FER+'s labels into .gpu/
#   bash scripts/gpu_recipe.sh run       # on the device machine (device tool: carry [".gpu"], timeout 600 s)
#   bash scripts/gpu_recipe.sh fetch DIR # here: unpack the stages that came back (DIR = the reply's files_at)
#
# `run` trains the stages one after the other with each config file unchanged but for the device, the
# data (the pack) and the teachers (the stages just trained); each finished stage goes to $OUT as a
# .tar.gz of its run folder without checkpoints, so a run cut short still returns what it finished.
# Training speed and accuracy are in each run's log.txt and best.json; evaluate the stages here with
# `ferkit evaluate --model runs/gpu-stage3 ...` as in MODEL_CARD.md. STAGES="1" (or "1 2") stops early,
# for a device budget too short for all 181 epochs. A dry run on the CPU:
#   DEVICE=cpu QUICK=1 bash scripts/gpu_recipe.sh run
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS=${FERKIT_DATASETS:-../shared/datasets}
GPU_DIR=.gpu

prepare() {
    grep -qx "/$GPU_DIR/" .git/info/exclude 2>/dev/null || echo "/$GPU_DIR/" >> .git/info/exclude
    mkdir -p "$GPU_DIR/ferplus"
    cp "$DATASETS"/ferplus/*.csv "$GPU_DIR/ferplus/"
    .venv/bin/python - "$DATASETS/fer2013" "$GPU_DIR/fer2013.npz" <<'PY'
import os
import sys

from ferkit.data import pack_folder

pack = pack_folder(sys.argv[1], sys.argv[2])
print(f"{pack}: {os.path.getsize(pack) / 2**20:.1f} MiB")
PY
}

stage() {  # stage NAME ferkit-train-arguments...: train, then send the run folder back
    local name=$1
    shift
    echo "== $name: ferkit train $*"
    local start=$SECONDS
    $PYTHON -m ferkit train "$@" --data "$GPU_DIR/fer2013.npz" --device "$DEVICE" --no-progress \
        $QUICK_ARGS --out "$RUNS/$name"
    echo "== $name: $((SECONDS - start)) s wall"
}

send() {  # send NAME: the run folder without checkpoints, to $OUT
    tar -czf "$OUT/$1.tar.gz" -C "$RUNS" --exclude='checkpoint*' --exclude='*.pt' "$1"
}

run() {
    PYTHON=${PYTHON:-python3}
    DEVICE=${DEVICE:-cuda}
    OUT=${OUT:-/tmp/ferkit-gpu-out}
    RUNS=${RUNS:-/tmp/ferkit-gpu-runs}
    QUICK_ARGS=""
    [ -n "${QUICK:-}" ] && QUICK_ARGS="--max-per-class 30 --epochs 2"
    export PYTHONPATH=src PYTHONUNBUFFERED=1
    mkdir -p "$OUT" "$RUNS"
    exec > >(tee "$OUT/log.txt") 2>&1
    $PYTHON -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available() and \
torch.cuda.get_device_name())"
    local stages=" ${STAGES:-1 2 3} "
    stage gpu-stage1 --config configs/default-teacher.yaml
    local extend=75
    [ -n "${QUICK:-}" ] && extend=3
    $PYTHON -m ferkit train --resume "$RUNS/gpu-stage1" --epochs $extend --lr 3e-4 --no-progress
    send gpu-stage1
    [[ $stages == *" 2 "* ]] || return 0
    stage gpu-stage2 --config configs/default-base.yaml --teacher "$RUNS/gpu-stage1/best.safetensors"
    send gpu-stage2
    [[ $stages == *" 3 "* ]] || return 0
    stage gpu-stage3 --config configs/default.yaml --ferplus "$GPU_DIR/ferplus" --init "$RUNS/gpu-stage2" \
        --teacher "$RUNS/gpu-stage2/best.safetensors"
    send gpu-stage3
}

fetch() {
    mkdir -p runs
    for archive in "${1:?the folder the device tool put the files in}"/gpu-stage*.tar.gz; do
        tar -xzf "$archive" -C runs
        echo "runs/$(basename "$archive" .tar.gz)"
    done
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    fetch) fetch "${2:-}" ;;
    *) echo "usage: $0 prepare | run | fetch DIR" >&2; exit 2 ;;
esac
