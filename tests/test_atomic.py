"""Atomic outputs: all or nothing, with the permissions a plain open() would give."""

import os

import pytest
import torch

from stylenorm.atomic import atomic_output
from stylenorm.checkpoints import save_model


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert list(tmp_path.iterdir()) == []


def test_saved_models_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_model(tmp_path / "m.safetensors", {"w": torch.zeros(2)}, {"kind": "test"})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert path.with_suffix(".json").stat().st_mode & 0o777 == 0o644
