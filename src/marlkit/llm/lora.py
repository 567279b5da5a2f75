"""Low-rank adapters (LoRA, through ``peft``) on a Hugging Face causal LM: the base frozen, only adapters trained.

``add_lora(model, LoraSettings(...))`` wraps a model in a ``peft`` model whose base weights have
``requires_grad=False`` and whose LoRA matrices ``A`` (random) and ``B`` (zero) are the only trainable parameters:
an update leaves the base exactly as it was, and a freshly wrapped model computes what the base computes (``B = 0``).
Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685.

What a run keeps is the adapters alone: ``adapter_state(model)`` is the plain tensor dict of the LoRA weights (a
few hundred kB for SmolLM2-135M at rank 8, against 538 MB for the model), ``save_adapters``/``load_adapters`` write
and read it as ``safetensors`` (no pickle, nothing executed), next to a small JSON of the LoRA settings.
``merge_lora(model)`` folds the adapters into the base weights and returns the plain model (for serving or export).

``peft`` is imported lazily: install ``marlkit[llm]``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Linear layers adapted by default: the attention projections of Llama-style models (SmolLM2, Qwen, Mistral) and
#: GPT-2's fused attention and output projections.
DEFAULT_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "c_attn", "c_proj")
ADAPTER_FILE = "adapter.safetensors"
SETTINGS_FILE = "adapter_settings.json"


@dataclass(frozen=True)
class LoraSettings:
    """Rank, scale and placement of the adapters; validated at construction."""

    rank: int = 8
    """Rank ``r`` of each adapter ``B A`` (``A``: r x in, ``B``: out x r)."""
    alpha: int = 16
    """Scale: the adapter adds ``(alpha / rank) B A x``."""
    dropout: float = 0.0
    """Dropout on the adapter's input (0 keeps sampled and re-scored log-probabilities equal)."""
    targets: tuple[str, ...] = field(default=DEFAULT_TARGETS)
    """Names of the linear modules to adapt (those present in the model are used)."""
    last_layers: int | None = None
    """Adapt only the last ``last_layers`` transformer blocks (None: all). The backward pass then stops at the
    lowest adapted block: on a CPU this is most of the cost of an update of a 30-block model."""

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1:
            raise ValueError(f"LoRA rank must be a positive integer, got {self.rank!r}")
        if not isinstance(self.alpha, int) or isinstance(self.alpha, bool) or self.alpha < 1:
            raise ValueError(f"LoRA alpha must be a positive integer, got {self.alpha!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}")
        targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
        if not targets or any(not isinstance(t, str) or not t for t in targets):
            raise ValueError(f"LoRA targets must be non-empty module names, got {self.targets!r}")
        object.__setattr__(self, "targets", targets)
        if self.last_layers is not None and (
            not isinstance(self.last_layers, int) or isinstance(self.last_layers, bool) or self.last_layers < 1
        ):
            raise ValueError(f"last_layers must be a positive integer or None (all blocks), got {self.last_layers!r}")


def _present_targets(model: Any, targets: Sequence[str]) -> list[str]:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    found = [t for t in targets if t in names]
    if not found:
        linear = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ in ("Linear", "Conv1D")}
        )
        raise ValueError(
            f"none of the LoRA targets {list(targets)} is a module of this model; its linear layers: {linear}"
        )
    return found


def add_lora(model: Any, settings: LoraSettings | None = None, seed: int = 0) -> Any:
    """``model`` wrapped with LoRA adapters (a ``peft`` model, eval mode): base frozen, adapters trainable.

    The adapters' random ``A`` matrices are drawn from ``seed`` (the global torch RNG is left as it was)."""
    import torch
    from peft import LoraConfig, get_peft_model

    settings = settings or LoraSettings()
    layers = None
    if settings.last_layers is not None:
        total = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
        if not isinstance(total, int):
            raise ValueError("last_layers needs a model config with num_hidden_layers (or n_layer)")
        layers = list(range(max(0, total - settings.last_layers), total))
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=_present_targets(model, settings.targets),
        bias="none",
        task_type="CAUSAL_LM",
        fan_in_fan_out=getattr(model.config, "model_type", "") == "gpt2",
        layers_to_transform=layers,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        wrapped = get_peft_model(model, config)
    for name, p in wrapped.named_parameters():
        p.requires_grad_("lora_" in name)
    return wrapped.eval()


def is_lora(model: Any) -> bool:
    """Whether ``model`` carries LoRA adapters (a ``peft`` model)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def adapter_state(model: Any) -> dict[str, Any]:
    """The adapters' weights alone, as a plain dict of CPU tensors (detached copies)."""
    from peft import get_peft_model_state_dict

    if not is_lora(model):
        raise TypeError("adapter_state needs a model wrapped by add_lora (a peft model)")
    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}


def set_adapter_state(model: Any, state: Mapping[str, Any]) -> None:
    """Load adapter weights (``adapter_state``'s dict) into a model wrapped by ``add_lora`` with the same settings.

    Raises ``ValueError`` naming the keys that do not match (other rank, other targets, other model)."""
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    if not is_lora(model):
        raise TypeError("set_adapter_state needs a model wrapped by add_lora (a peft model)")
    own = get_peft_model_state_dict(model)
    missing, unknown = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unknown or wrong:
        raise ValueError(
            f"the adapter weights do not fit this model: missing {missing[:3]}, unknown {unknown[:3]}, "
            f"other shapes {wrong[:3]} (saved with another rank, other targets or another base model?)"
        )
    with torch.no_grad():
        set_peft_model_state_dict(model, dict(state))


def save_adapters(model: Any, folder: str | os.PathLike[str], settings: LoraSettings | None = None) -> Path:
    """Write the adapters (``adapter.safetensors``) and their settings (``adapter_settings.json``) into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in adapter_state(model).items()}
    tmp = folder / (ADAPTER_FILE + ".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, folder / ADAPTER_FILE)
    if settings is not None:
        (folder / SETTINGS_FILE).write_text(json.dumps(asdict(settings), indent=1) + "\n")
    return folder / ADAPTER_FILE


def read_adapters(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], LoraSettings | None]:
    """``(weights, settings)`` saved by ``save_adapters`` (settings None when none were saved)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    path = folder / ADAPTER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no adapters at {path} (save_adapters writes {ADAPTER_FILE} into a folder)")
    settings = None
    if (folder / SETTINGS_FILE).is_file():
        values = json.loads((folder / SETTINGS_FILE).read_text())
        settings = LoraSettings(**{**values, "targets": tuple(values.get("targets", DEFAULT_TARGETS))})
    return load_file(str(path)), settings


def load_adapters(model: Any, folder: str | os.PathLike[str], seed: int = 0) -> Any:
    """A base ``model`` with the adapters of ``folder`` (wrapped first, with the saved settings, if it is not)."""
    state, settings = read_adapters(folder)
    if not is_lora(model):
        model = add_lora(model, settings, seed)
    set_adapter_state(model, state)
    return model


def merge_lora(model: Any) -> Any:
    """The plain model with the adapters folded into its weights (``W + (alpha / r) B A``); ``model`` is consumed."""
    if not is_lora(model):
        raise TypeError("merge_lora needs a model wrapped by add_lora (a peft model)")
    return model.merge_and_unload().eval()


def trainable_parameters(model: Any) -> list[Any]:
    """The parameters an optimizer should update (the adapters, when the model carries them)."""
    return [p for p in model.parameters() if p.requires_grad]


__all__ = [
    "DEFAULT_TARGETS",
    "LoraSettings",
    "adapter_state",
    "add_lora",
    "is_lora",
    "load_adapters",
    "merge_lora",
    "read_adapters",
    "save_adapters",
    "set_adapter_state",
    "trainable_parameters",
]
