#!/usr/bin/env bash
# bash tools/dist_test.sh CONFIG WEIGHTS NUM_PROCS [test.py args...]   (torchrun; gloo ranks on a CPU-only machine)
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON (default: python).
set -euo pipefail
if [ $# -lt 3 ]; then echo "usage: $0 CONFIG WEIGHTS NUM_PROCS [test.py args...]" >&2; exit 2; fi
CONFIG=$1
WEIGHTS=$2
NPROCS=$3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" --nproc_per_node="$NPROCS" \
    "$ROOT/tools/test.py" "$CONFIG" "$WEIGHTS" --launcher pytorch "${@:4}"
