"""``save_atomic`` directly: the final name only ever holds a complete checkpoint, and a write that fails before
its rename leaves what was there before untouched (a crash at any moment cannot tear a checkpoint)."""

import os

import pytest
import torch

from marlkit.core import checkpoint as ckpt


def payload(tag: int) -> dict:
    return {"format": ckpt.FORMAT, "env_steps": tag, "weights": torch.full((1000,), float(tag))}


def read(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_the_final_name_appears_only_complete(tmp_path, monkeypatch):
    target = tmp_path / "step_000000000100.pt"
    renames = []
    real_replace = os.replace

    def watching_replace(src, dst):
        src, dst = os.fspath(src), os.fspath(dst)
        if dst == os.fspath(target):
            # at the rename: nothing at the final name yet, and the file about to take it is already complete
            renames.append((src, os.path.exists(dst), read(src)["env_steps"]))
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", watching_replace)
    ckpt.save_atomic(payload(100), target)
    assert len(renames) == 1, "the checkpoint must reach its final name by one rename"
    src, existed, steps = renames[0]
    assert src != os.fspath(target), "the checkpoint was written in place under its final name"
    assert os.path.dirname(src) == os.fspath(tmp_path)  # a temporary in the same folder: the rename cannot copy
    assert not existed and steps == 100
    assert read(target)["env_steps"] == 100
    assert ckpt.clean(tmp_path) == []  # no temporary left behind


def test_a_write_that_fails_before_its_rename_leaves_the_previous_file_untouched(tmp_path, monkeypatch):
    target = tmp_path / "step_000000000100.pt"
    ckpt.save_atomic(payload(1), target)
    before = target.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("injected: the process dies before the rename")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError, match="injected"):
        ckpt.save_atomic(payload(2), target)
    assert target.exists(), "the failed write removed the previous checkpoint"
    assert target.read_bytes() == before  # not truncated, not half-overwritten
    assert read(target)["env_steps"] == 1
    assert ckpt.clean(tmp_path) == []  # the failed write removed its temporary
