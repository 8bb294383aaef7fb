"""Synchronised BatchNorm in two-process CPU data-parallel training (accelerate, gloo).

torchrun starts two processes of tests/dist_bn_worker.py; each trains on half of a
fixed batch. The seeds' SyncBN claim, made executable: every process normalises with
the statistics of the *concatenated* batch, gets the gradients of one process training
on that batch, and both end with identical weights, equal to the single-process ones.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("dist_bn_worker.py")
TOL = dict(rtol=1e-4, atol=1e-5)


def _load_worker():
    spec = importlib.util.spec_from_file_location("dist_bn_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist_bn")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(WORKER), str(out),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"torchrun failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    ranks = [load_file(str(out / f"rank{r}.safetensors")) for r in range(2)]
    infos = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    return ranks, infos


@pytest.fixture(scope="module")
def single_process_run():
    """The same net, data and optimizer, in one process on the whole batch."""
    worker = _load_worker()
    torch.set_num_threads(1)
    model = worker.build_model()
    x, target = worker.full_batch()
    return worker.train(model, x, target, worker.make_optimizer(model)), worker


pytestmark = pytest.mark.slow


def test_accelerate_runs_two_cpu_processes_with_ddp(two_process_run):
    _, infos = two_process_run
    assert sorted(info["rank"] for info in infos) == [0, 1]
    for info in infos:
        assert info["world_size"] == 2
        assert info["is_multi_cpu"], info["distributed_type"]
        assert info["backend"] == "gloo"
        assert info["ddp"] == "DistributedDataParallel"
        assert info["bn_classes"] == ["BatchNorm"]  # our layer, not converted on CPU


def _bn_names(records) -> list[str]:
    return sorted({key.split("/")[1] for key in records if key.startswith("step0/") and key.endswith("/input")})


def test_each_process_normalises_with_the_statistics_of_the_concatenated_batch(two_process_run, single_process_run):
    ranks, _ = two_process_run
    reference, worker = single_process_run
    half = worker.BATCH // 2
    names = _bn_names(reference)
    assert len(names) == 2 and _bn_names(ranks[0]) == names
    for step in range(worker.STEPS):
        for name in names:
            key = f"step{step}/{name}"
            inputs = [r[f"{key}/input"] for r in ranks]
            both = torch.cat(inputs)
            # Inputs are the halves of the single-process input: all earlier layers agree.
            torch.testing.assert_close(both, reference[f"{key}/input"], **TOL)
            mean = both.mean(dim=(0, 2, 3), keepdim=True)
            var = both.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
            gamma = ranks[0][f"step{step}/param/{name}.weight"].view(1, -1, 1, 1)
            beta = ranks[0][f"step{step}/param/{name}.bias"].view(1, -1, 1, 1)
            for rank, records in enumerate(ranks):
                x, y = inputs[rank], records[f"{key}/output"]
                expected = (x - mean) / torch.sqrt(var + 1e-5) * gamma + beta
                torch.testing.assert_close(y, expected, **TOL)
                torch.testing.assert_close(y, reference[f"{key}/output"][rank * half:(rank + 1) * half], **TOL)
                # Guard: this batch's halves differ enough that local statistics would be visibly wrong.
                local = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(
                    x.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + 1e-5) * gamma + beta
                assert (y - local).abs().max() > 1e-2


def test_gradients_and_running_stats_equal_the_single_process_ones(two_process_run, single_process_run):
    ranks, _ = two_process_run
    reference, worker = single_process_run
    checked = 0
    for key, value in reference.items():
        if "/grad/" in key or "/buffer/" in key:
            for records in ranks:
                torch.testing.assert_close(records[key], value, **TOL, msg=lambda m, k=key: f"{k}: {m}")
            checked += 1
    names = {key.split("/", 2)[2] for key in reference if "/buffer/" in key}
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked", "4.running_mean"} <= names
    assert checked == worker.STEPS * (8 + 6)  # 8 parameters and 6 BN buffers per step


def test_both_processes_end_with_identical_weights_equal_to_single_process(two_process_run, single_process_run):
    ranks, _ = two_process_run
    reference, _ = single_process_run
    finals = [key for key in reference if key.startswith("final/")]
    assert len(finals) == 8
    for key in finals:
        torch.testing.assert_close(ranks[0][key], ranks[1][key], rtol=0, atol=1e-7)
        torch.testing.assert_close(ranks[0][key], reference[key], **TOL)
        # Training moved the weights, so agreement is not just agreement at initialisation.
    initial = reference["step0/param/0.weight"]
    assert (reference["final/0.weight"] - initial).abs().max() > 1e-3


@pytest.mark.parametrize("processes,device,converted", [(2, "cuda", True), (1, "cuda", False), (2, "cpu", False)])
def test_sync_batchnorm_for_uses_torch_syncbn_only_for_multi_gpu(processes, device, converted):
    """On GPUs torch's SyncBatchNorm (CUDA kernels) replaces our layer, keeping its state;
    on CPU our layer stays, as it synchronises through torch.distributed itself."""
    from types import SimpleNamespace

    from stylenorm.training import sync_batchnorm_for

    worker = _load_worker()
    model = worker.build_model()
    model[1].running_mean.fill_(0.5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    accelerator = SimpleNamespace(num_processes=processes, device=torch.device(device))
    result = sync_batchnorm_for(model, accelerator)
    classes = {type(m).__name__ for m in result.modules() if "Norm" in type(m).__name__}
    assert classes == ({"SyncBatchNorm"} if converted else {"BatchNorm"})
    for key, value in result.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
