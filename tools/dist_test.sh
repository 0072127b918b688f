#!/usr/bin/env bash
# Multi-GPU (or multi-process CPU/gloo) testing with torchrun.
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Multi-node: NNODES=2 NODE_RANK=0 MASTER_ADDR=host0 PORT=29500 \
#             tools/dist_test.sh CONFIG CKPT 8
set -euo pipefail
# Same lines as dist_train.sh and slurm_train.sh: MMPose keeps each
# launcher a standalone script, and so do we.
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
# PYTHON selects the interpreter (default: python on PATH).
PYTHONPATH="$(dirname "$0")/..:${PYTHONPATH:-}" \
"${PYTHON:-python}" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" --master_port="$PORT" \
    --nproc_per_node="$GPUS" \
    "$(dirname "$0")"/test.py "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
