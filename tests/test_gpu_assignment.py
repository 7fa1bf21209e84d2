"""Across GPUs: each Ray task trains on the GPU Ray assigned to it (tested without CUDA, on a local
Ray that declares fake GPU resources: the assignment and the device each task picks)."""

from __future__ import annotations

import os
import time

import pytest

from modelzoo.devices import deterministic_kernels, worker_device
from modelzoo.plan import Task


def test_worker_device_follows_the_assigned_gpu() -> None:
    assert worker_device("cpu", [1], "1") == "cpu"
    assert worker_device("cuda", [], None) == "cuda"  # no GPU share: keep the driver's choice
    assert worker_device("cuda:3", [5], "5") == "cuda:0"  # the driver's index means nothing here
    assert worker_device("cuda", ["2"], "1,2") == "cuda:1"
    assert worker_device("cuda", [7], None) == "cuda:0"


def test_deterministic_kernels_leave_cpu_settings_alone() -> None:
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    with deterministic_kernels("cpu"):
        assert torch.are_deterministic_algorithms_enabled() == before


def test_each_ray_task_is_pinned_to_the_gpu_ray_assigned() -> None:
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:

        @ray.remote(num_cpus=1, num_gpus=1)
        def place(task: Task) -> tuple[list, str | None, str]:
            from modelzoo.run import pinned

            picked = pinned(task).device  # what modelzoo's worker function trains on
            time.sleep(1.5)  # hold the GPU so both tasks run at once
            return ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES"), picked

        tasks = [Task(runs=(), device="cuda:1", index=i) for i in range(2)]
        placed = ray.get([place.remote(task) for task in tasks])
    finally:
        ray.shutdown()
    ids = sorted(int(i) for gpu_ids, _, _ in placed for i in gpu_ids)
    assert ids == [0, 1]  # two tasks at once, one GPU each
    for gpu_ids, visible, device in placed:
        assert visible == str(gpu_ids[0]) and device == "cuda:0"
