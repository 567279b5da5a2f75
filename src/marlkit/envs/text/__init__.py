"""Text games for language agents: strings in and out per agent, turn order declared, moves validated."""

from marlkit.envs.text.base import (
    Message,
    TextActionError,
    TextEnv,
    TextOutcome,
    TextVecEnv,
    clip_text,
    count_words,
    quote_text,
)
from marlkit.envs.text.registry import TextEnvSpec, TextGames, list_text_envs, make_text, register_text, text_spec

__all__ = [
    "Message",
    "TextActionError",
    "TextEnv",
    "TextEnvSpec",
    "TextGames",
    "TextOutcome",
    "TextVecEnv",
    "clip_text",
    "count_words",
    "list_text_envs",
    "make_text",
    "quote_text",
    "register_text",
    "text_spec",
]
