"""Language-model agents: the text-policy protocol, backends (local Hugging Face, OpenAI-compatible HTTP), RL on tokens.

Heavy dependencies (transformers, httpx) are imported inside the modules that need them: install ``marlkit[llm]``.
"""

from marlkit.llm.policy import TextPolicy

__all__ = ["TextPolicy"]
