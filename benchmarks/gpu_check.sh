#!/usr/bin/env bash
# The whole GPU check, prepared for a session that is lent a GPU machine (torch with CUDA, no Ray,
# no pytest, no tqdm there). Run from the repository root:
#   bash benchmarks/gpu_check.sh            (writes under $OUT when set, else a temp folder)
# 1. engine on CUDA vs the CPU reference; 2. per-step throughput on CUDA vs the CPU baseline;
# 3. the MNIST-scale zoo of the issue (1000 CNN-small x 25 epochs, 60k images, batch 32), timed.
set -euo pipefail
export PYTHONPATH=.
out=${OUT:-$(mktemp -d)}
python -c "import torch; print('device:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"
python benchmarks/cuda_equivalence.py --device cuda
python benchmarks/train_throughput.py --device cuda --case cnn_small --models 256 --epochs 1
start=$(date +%s)
python -m modelzoo.cli generate mnist_seed --executor local --device cuda --quiet \
    --data-dir ../shared/data/mnist --store "$out/store"
echo "mnist_seed (1000 x 25 epochs) on CUDA: $(( $(date +%s) - start )) s"
python -m modelzoo.cli info "$out/store/mnist_seed" | tail -12
