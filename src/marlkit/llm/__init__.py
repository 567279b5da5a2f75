"""Language-model agents: the text-policy protocol, backends (local Hugging Face, OpenAI-compatible HTTP), RL on tokens.

Heavy dependencies (transformers, httpx) are imported inside the modules that need them: install ``marlkit[llm]``.
"""

from typing import Any

from marlkit.llm.policy import TextPolicy

#: Public names of the backends -> their module, imported on first use so ``import marlkit.llm`` stays light.
_LAZY = {
    "HFPolicy": "marlkit.llm.hf",
    "Generation": "marlkit.llm.hf",
    "Sampling": "marlkit.llm.hf",
    "convert_gguf": "marlkit.llm.hf",
    "smollm2_gguf": "marlkit.llm.hf",
    "OpenAIChatPolicy": "marlkit.llm.openai_compat",
    "ChatReply": "marlkit.llm.openai_compat",
    "Usage": "marlkit.llm.openai_compat",
    "TokenBucket": "marlkit.llm.openai_compat",
    "APIError": "marlkit.llm.openai_compat",
    "APIAuthError": "marlkit.llm.openai_compat",
    "APIStatusError": "marlkit.llm.openai_compat",
    "APIResponseError": "marlkit.llm.openai_compat",
    "APIConnectionError": "marlkit.llm.openai_compat",
    "ChatServer": "marlkit.llm.serve",
    "play": "marlkit.llm.games",
    "game_texts": "marlkit.llm.games",
    "tiny_causal_lm": "marlkit.llm.tiny",
    "char_tokenizer": "marlkit.llm.tiny",
    "tiny_gpt2": "marlkit.llm.tiny",
    "word_tokenizer": "marlkit.llm.tiny",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'marlkit.llm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["TextPolicy", *_LAZY]
