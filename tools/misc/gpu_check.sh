#!/usr/bin/env bash
# The GPU path in one run: the paper config (ResNet50, 256 x 256) trained from
# the face-crop cache of generated WFLW-sized photographs, with and without
# AMP and channels_last (images/s, GPU utilisation); the same with the
# augmentation on the device (tools/train.py --device-augment: the workers
# only read rows of the cache's memory-mapped array), fp32 and AMP, and the
# feed benchmark timing that augmentation on the device; a 1-GPU torchrun with
# NCCL, mmaniso's loss, pose bins and mean shape on the device against the
# CPU, tools/test.py and tools/infer.py on the device, and a summary table.
#
#   bash tools/misc/gpu_check.sh [--device cuda|cpu] [--iters 300]
#       [--batch-size 64] [--images 256] [--workers 8] [--work-dir DIR]
#       [--small-model]
#
# About 7 minutes on one recent GPU. With --device cpu (what the test suite
# runs, tiny: --iters 1 --batch-size 2 --images 4 --small-model) every piece
# runs on the CPU instead: AMP is skipped, torchrun uses gloo.
# --small-model swaps the ResNet50 for a ResNet18 of a quarter width (the
# same head, loss, sampler, hooks and data path): the CPU dry run checks
# that every piece runs, not how fast a ResNet50 is. Every step's log is in
# <work-dir>/logs/; the summary is <work-dir>/summary.md. Exit code 1 if a
# step failed. Nothing is downloaded (the backbone starts from scratch).
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
PY=${PYTHON:-python}

DEVICE=cuda ITERS=300 BATCH=64 IMAGES=256 WORKERS=8 WORK=work_dirs/gpu_check
SMALL=0
while [ $# -gt 0 ]; do
    case $1 in
        --device) DEVICE=$2; shift 2 ;;
        --iters) ITERS=$2; shift 2 ;;
        --batch-size) BATCH=$2; shift 2 ;;
        --images) IMAGES=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --work-dir) WORK=$2; shift 2 ;;
        --small-model) SMALL=1; shift ;;
        -h|--help) sed -n 2,23p "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $DEVICE in cpu|cuda*) ;; *) echo "gpu_check.sh: --device cpu or cuda, got $DEVICE" >&2; exit 2 ;; esac
if [ -e "$WORK/summary.md" ]; then
    echo "gpu_check.sh: $WORK holds an earlier check; give another --work-dir or remove it" >&2
    exit 2
fi
mkdir -p "$WORK/logs"
WORK=$(cd "$WORK" && pwd)
SUMMARY=$WORK/summary.tsv
: > "$SUMMARY"
FAILED=0
START=$(date +%s)

record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$SUMMARY"; }
# run NAME CMD...: runs CMD with its output in logs/NAME.log; records a
# failure with the log's last line.
run() {
    local name=$1; shift
    local t0=$(date +%s)
    echo "[gpu_check] $name ..."
    "$@" > "$WORK/logs/$name.log" 2>&1
    local rc=$?
    LAST_SECONDS=$(( $(date +%s) - t0 ))
    if [ $rc -ne 0 ]; then
        FAILED=1
        record "$name" FAIL "exit $rc: $(tail -n 1 "$WORK/logs/$name.log" | cut -c1-120) (logs/$name.log)"
        echo "[gpu_check] $name failed (exit $rc), see $WORK/logs/$name.log"
    fi
    return $rc
}

# --- environment -------------------------------------------------------------
$PY - "$DEVICE" > "$WORK/logs/environment.log" 2>&1 <<'EOF'
import sys, torch, mmengine, mmpose, mmaniso
dev = sys.argv[1]
name = torch.cuda.get_device_name(0) if dev != 'cpu' and torch.cuda.is_available() else 'cpu'
print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN '
      f'{torch.backends.cudnn.version()}, mmpose {mmpose.__version__}, '
      f'mmengine {mmengine.__version__}, mmaniso {mmaniso.__version__}, device {name}')
if dev != 'cpu' and not torch.cuda.is_available():
    sys.exit('torch sees no CUDA device')
EOF
if [ $? -ne 0 ]; then
    echo "gpu_check.sh: $(tail -n 1 "$WORK/logs/environment.log")" >&2
    exit 2
fi
record environment ok "$(tail -n 1 "$WORK/logs/environment.log")"
HAVE_SMI=0
if [ "$DEVICE" != cpu ] && command -v nvidia-smi > /dev/null; then HAVE_SMI=1; fi

# --- data: WFLW-sized photographs, then their crop cache -----------------------
DATA=$WORK/data
run data $PY - "$DATA" "$IMAGES" <<'EOF'
import sys
from mmaniso.testing.wflw_like import write_wflw_like
root, num = sys.argv[1], int(sys.argv[2])
write_wflw_like(root, num, 'train', seed=0)
write_wflw_like(root, max(4, num // 8), 'test', seed=1)
EOF
[ $? -eq 0 ] && record data ok "$IMAGES train + $(( IMAGES / 8 > 4 ? IMAGES / 8 : 4 )) test WFLW-like JPEGs in ${LAST_SECONDS} s"

# The config that trains from the cache; epochs to reach about ITERS
# iterations (PoseBalancedSampler's 'auto' draws keep epochs dataset-long).
EPOCHS=$(( (ITERS * BATCH + IMAGES - 1) / IMAGES ))
CACHE=$WORK/cache
cat > "$WORK/paper_from_cache.py" <<EOF
_base_ = ['$REPO/configs/aniso_res50_wflw.py']
data_root = '$CACHE/'
model = dict(backbone=dict(init_cfg=None))  # nothing downloaded
train_dataloader = dict(
    batch_size=$BATCH, num_workers=$WORKERS, dataset=dict(data_root=data_root))
val_dataloader = dict(
    batch_size=$BATCH, num_workers=$WORKERS, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/face_landmarks_wflw_test.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=$EPOCHS, val_interval=$EPOCHS)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=$EPOCHS))
EOF
if [ "$SMALL" = 1 ]; then
    # A BasicBlock ResNet18 at base width 16 ends in 16 * 8 = 128 channels.
    cat >> "$WORK/paper_from_cache.py" <<EOF
model.update(backbone=dict(
    type='ResNet', depth=18, stem_channels=16, base_channels=16, init_cfg=None),
    head=dict(in_channels=128))
EOF
fi
cat > "$WORK/paper_from_cache_channels_last.py" <<EOF
_base_ = ['./paper_from_cache.py']
custom_hooks = [
    dict(type='SyncBuffersHook'),
    dict(type='PoseBalancingHook'),
    dict(type='ChannelsLastHook'),
]
EOF
# Written after the configs: make_crop_cache.py reads the margin from them.
cat > "$WORK/paper_full_images.py" <<EOF
_base_ = ['./paper_from_cache.py']
train_dataloader = dict(dataset=dict(data_root='$DATA/'))
EOF
run crop_cache $PY tools/dataset_converters/make_crop_cache.py "$WORK/paper_full_images.py" \
    --out "$CACHE" --workers "$WORKERS" --array \
    --ann-files annotations/face_landmarks_wflw_train.json annotations/face_landmarks_wflw_test.json
[ $? -eq 0 ] && record crop_cache ok "$(grep -o 'margin [0-9.]* x the face box' "$WORK/logs/crop_cache.log"), ${LAST_SECONDS} s"

# --- training: fp32, AMP, AMP + channels_last ------------------------------------
# images/s from MMEngine's per-iteration time (median after the first
# logged interval), GPU utilisation sampled by nvidia-smi every 0.5 s.
throughput() {
    $PY - "$1" "$BATCH" <<'EOF'
import glob, json, statistics, sys
files = sorted(glob.glob(sys.argv[1] + '/2*/vis_data/scalars.json'))
times, data = [], []
for line in open(files[-1]):
    e = json.loads(line)
    if 'time' in e and 'loss' in e:
        times.append(e['time']); data.append(e.get('data_time', 0.0))
times, data = times[1:] or times, data[1:] or data
t = statistics.median(times)
rate = int(sys.argv[2]) / t
print(f'{rate:.{0 if rate >= 10 else 2}f} images/s, {1000 * t:.0f} ms/iter '
      f'(data wait {100 * statistics.median(data) / t:.0f}%)')
EOF
}
train() {
    local name=$1 config=$2; shift 2
    local util=$WORK/logs/$name.gpu_util.txt smi=
    if [ $HAVE_SMI -eq 1 ]; then
        nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 > "$util" &
        smi=$!
    fi
    run "$name" $PY tools/train.py "$config" --work-dir "$WORK/$name" "$@"
    local rc=$?
    [ -n "$smi" ] && kill "$smi" 2> /dev/null
    [ $rc -ne 0 ] && return $rc
    local figure
    figure=$(throughput "$WORK/$name" 2>> "$WORK/logs/$name.log") || figure='no timing logged'
    if [ -n "$smi" ]; then
        figure="$figure, GPU $($PY -c "
import sys
rows = [l.split(',') for l in open('$util') if l.strip()]
u = [float(r[0]) for r in rows][len(rows) // 4:]  # past start-up
m = max(float(r[1]) for r in rows)
print(f'{sum(u) / max(1, len(u)):.0f}% busy, {m / 1024:.1f} GiB')")"
    fi
    if grep -q 'ChannelsLastHook' "$config"; then
        figure="$figure, $(grep -o '[0-9]* of [0-9]* convolution weights are channels-last' "$WORK/logs/$name.log" | tail -n 1)"
    fi
    record "$name" ok "$figure; ${LAST_SECONDS} s"
}
CKPT=
train train_fp32 "$WORK/paper_from_cache.py" && CKPT=$(ls "$WORK"/train_fp32/epoch_*.pth 2> /dev/null | tail -n 1)
if [ "$DEVICE" = cpu ]; then
    record train_amp skipped 'AMP needs CUDA'
    train train_channels_last "$WORK/paper_from_cache_channels_last.py"
else
    train train_amp "$WORK/paper_from_cache.py" --amp
    train train_amp_channels_last "$WORK/paper_from_cache_channels_last.py" --amp
fi

# --- the device feed: stock pipeline above vs augmentation on the device ---------
# Same config, same cache; the CPU reads rows of the crop array and the
# data preprocessor flips, shifts, scales and rotates on the device.
train train_feed_fp32 "$WORK/paper_from_cache.py" --device-augment
if [ "$DEVICE" = cpu ]; then
    record train_feed_amp skipped 'AMP needs CUDA'
else
    train train_feed_amp "$WORK/paper_from_cache.py" --device-augment --amp
fi
FEED_IMAGES=$(( IMAGES < 64 ? IMAGES : 64 ))
run feed_benchmark $PY tools/analysis_tools/benchmark_feed.py --device "$DEVICE" \
    --images "$FEED_IMAGES" --batch-size "$BATCH" --rounds 1 --aug-rounds 5
if [ $? -eq 0 ]; then
    record feed_benchmark ok "$(grep -o '[0-9.]* ms/batch ([0-9]* images/s)' "$WORK/logs/feed_benchmark.log"), augmentation of $BATCH crops on $DEVICE; CPU side $(grep -o "[0-9.]*x MMPose's pipeline on photographs" "$WORK/logs/feed_benchmark.log") per worker"
fi

# --- one-GPU torchrun ---------------------------------------------------------
BACKEND=nccl; [ "$DEVICE" = cpu ] && BACKEND=gloo
run torchrun $PY -m torch.distributed.run --nproc_per_node 1 --master_port 29533 \
    tools/train.py "$WORK/paper_from_cache.py" --launcher pytorch --work-dir "$WORK/torchrun" \
    --cfg-options train_cfg.max_epochs=1 train_cfg.val_interval=1 env_cfg.dist_cfg.backend=$BACKEND
if [ $? -eq 0 ]; then
    if grep -q 'Distributed training: True' "$WORK/logs/torchrun.log"; then
        record torchrun ok "1 process, $BACKEND backend, 1 epoch in ${LAST_SECONDS} s"
    else
        FAILED=1; record torchrun FAIL 'ran, but not distributed (logs/torchrun.log)'
    fi
fi

# --- mmaniso's maths on the device ----------------------------------------------
run device_check $PY -m mmaniso.testing.device_check --device "$DEVICE" ${CKPT:+--checkpoint "$CKPT"}
while IFS='|' read -r name status figure; do
    [ -n "$name" ] && record "${name% }" "$(echo $status)" "${figure# }"
done < <(grep ' | ' "$WORK/logs/device_check.log")

# --- tools/test.py and tools/infer.py on the device -----------------------------
if [ -n "$CKPT" ]; then
    # tools/test.py runs where torch puts the model: the GPU when there is one.
    if [ "$DEVICE" = cpu ]; then
        TEST_ENV="env CUDA_VISIBLE_DEVICES="
    else
        TEST_ENV=env
    fi
    run test $TEST_ENV $PY tools/test.py "$WORK/paper_from_cache.py" "$CKPT" --work-dir "$WORK/test" \
        && record test ok "$(grep -o 'NME: [0-9.]*' "$WORK/logs/test.log" | tail -n 1) on the generated test faces (model of train_fp32), ${LAST_SECONDS} s"
    PHOTO=$($PY -c "import matplotlib, os.path as p; print(p.join(p.dirname(matplotlib.__file__), 'mpl-data/sample_data/grace_hopper.jpg'))")
    run infer $PY tools/infer.py "$WORK/paper_from_cache.py" "$CKPT" "$PHOTO" \
        --device "$DEVICE" --out-dir "$WORK/infer"
    if [ $? -eq 0 ]; then
        FACES=$($PY -c "import json; print(len(json.load(open('$WORK/infer/grace_hopper.json'))['faces']))" 2>&1)
        if [ "$FACES" = 1 ] 2> /dev/null; then
            record infer ok "1 face found and landmarked on a real photograph (MTCNN on $DEVICE), ${LAST_SECONDS} s"
        else
            FAILED=1; record infer FAIL "expected 1 face in infer/grace_hopper.json, got $FACES"
        fi
    fi
else
    FAILED=1
    record test FAIL 'no checkpoint: train_fp32 failed'
    record infer FAIL 'no checkpoint: train_fp32 failed'
fi

# --- summary ----------------------------------------------------------------
{
    echo "gpu_check on $DEVICE, $(date -u +%Y-%m-%dT%H:%MZ), $(( $(date +%s) - START )) s; batch $BATCH, about $ITERS iterations ($EPOCHS epochs of $IMAGES images), $WORKERS workers"
    echo
    echo '| check | status | figure |'
    echo '|---|---|---|'
    while IFS=$'\t' read -r name status figure; do
        echo "| $name | $status | $figure |"
    done < "$SUMMARY"
} > "$WORK/summary.md"
echo
cat "$WORK/summary.md"
if grep -q $'\tFAIL\t' "$SUMMARY"; then FAILED=1; fi
exit $FAILED
