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
from marlkit.envs.text.textarena import TextArenaEnv, from_textarena

__all__ = [
    "Message",
    "TextActionError",
    "TextEnv",
    "TextEnvSpec",
    "TextGames",
    "TextArenaEnv",
    "TextOutcome",
    "TextVecEnv",
    "clip_text",
    "count_words",
    "from_textarena",
    "list_text_envs",
    "make_text",
    "quote_text",
    "register_text",
    "text_spec",
]
