"""Text games for language agents: strings in and out per agent, turn order declared, moves validated."""

from marlkit.envs.text.base import Message, TextActionError, TextEnv, TextOutcome, TextVecEnv, count_words

__all__ = ["Message", "TextActionError", "TextEnv", "TextOutcome", "TextVecEnv", "count_words"]
