"""Speaker-listener with a speaker that talks in words (``speaker-listener-text-v0``): a hybrid of text and arrays.

The particle task of ``marlkit.envs.particles.speaker_listener`` (a speaker that sees the goal's colour guides a
listener that moves; both get ``-|p_listener - p_goal|^2``), with the speaker's 3-symbol channel replaced by text.
The physics is that env's, used by composition (one copy of it runs underneath), not a copy of it.

**Interface.** The two agents act in different kinds of action, so this class is *TextEnv-like*, not a ``TextEnv``:
the same life cycle (``reset(seed) -> obs, info``; ``step(actions) -> obs, rewards, terminated, truncated, info``;
``to_act``, ``outcome()``, ``info["outcome"]`` at the end) but

* ``speaker_0`` observes text (the goal's colour, the step, any error) and acts in text: it should name the goal
  landmark's colour. ``parse_colour`` reads the first of ``red``/``green``/``blue`` in the text (any case), or an
  answer that is only an initial (``"r"``, ``"g"``, ``"b"``).
* ``listener_0`` observes the array of the particle env (11 floats: velocity, the three landmarks relative to it,
  and the message as a one-hot of the colour read) and acts with its usual action, ``Discrete(5)`` or, with
  ``continuous_actions``, ``Box(0, 1, (5,))``. ``info["message"]`` carries the speaker's raw text too, for a
  language-model listener.

So ``TextVecEnv`` (strings only) does not batch it; step copies in a loop, or batch the listener's arrays yourself.

**Invalid messages.** A text naming no colour is an invalid attempt: the speaker's reward gets ``invalid_penalty``
and its next observation opens with the error, but the world does not wait (it is a real-time task): the listener
hears silence (the all-zero message, as before the first step) at this step. So ``max_invalid`` does not apply.

Underneath, the particle env runs with continuous actions: the message is the one-hot of the colour read (or
zeros), and a discrete listener action ``a`` is passed as the one-hot of ``a``, which gives exactly the force of the
discrete action (tested), so the dynamics equal ``speaker-listener-v0``'s when the speaker names the goal.

**Outcome**: ``completed`` when the listener ends the episode touching the goal landmark (centre distance below
the sum of their sizes, 0.115); ``extra``: ``goal`` (colour), ``final_goal_distance``, ``message_accuracy`` (the
fraction of steps whose message was the goal's colour) and ``heard`` (the colour read at each step, or None).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from marlkit.envs.base import ActionError
from marlkit.envs.particles.speaker_listener import LISTENER, SpeakerListener
from marlkit.envs.text.base import _PRINTABLE, Message, TextActionError, TextOutcome, count_words, quote_text

COLOURS = ("red", "green", "blue")  # the order of the landmarks (and symbols) in the particle env
SPEAKER_ID, LISTENER_ID = "speaker_0", "listener_0"
_COLOUR = re.compile(r"\b(red|green|blue)\b", re.IGNORECASE)


def parse_colour(text: str) -> int | None:
    """Index of the colour named by ``text`` (0 red, 1 green, 2 blue), or None when it names none."""
    m = _COLOUR.search(text)
    if m:
        return COLOURS.index(m.group(1).lower())
    initial = text.strip().strip(".!\"'").lower()
    return "rgb".index(initial) if len(initial) == 1 and initial in "rgb" else None


class SpeakerListenerText:
    """The particle speaker-listener task with a text speaker and an array listener; see the module docstring."""

    agents = (SPEAKER_ID, LISTENER_ID)

    def __init__(
        self,
        max_steps: int = 25,
        continuous_actions: bool = False,
        invalid_penalty: float = -0.1,
        max_text_length: int = 4096,
        seed: int | None = None,
        count_tokens: Callable[[str], int] = count_words,
    ) -> None:
        if invalid_penalty > 0:
            raise ValueError(f"invalid_penalty must be <= 0 (a penalty), got {invalid_penalty}")
        self.world_env = SpeakerListener(max_steps=max_steps, continuous_actions=True, num_envs=1, seed=seed)
        self.max_steps = self.world_env.max_steps
        self.continuous_actions = bool(continuous_actions)
        self.invalid_penalty = float(invalid_penalty)
        self.max_text_length = max_text_length
        self.count_tokens = count_tokens
        sizes = [e.size for e in self.world_env.world.entities]
        self.touch_distance = sizes[LISTENER] + sizes[2]  # listener and a landmark (all landmarks are alike)
        self._listener_action_space = (
            spaces.Box(0.0, 1.0, (5,), np.float32) if self.continuous_actions else spaces.Discrete(5)
        )
        self._needs_reset = True

    # ------------------------------------------------------------------------------------------- spaces
    def observation_space(self, agent: str) -> spaces.Space[Any]:
        self._check_agent(agent)
        if agent == SPEAKER_ID:
            return spaces.Text(self.max_text_length, charset=_PRINTABLE)
        return self.world_env.observation_space(LISTENER_ID)

    def action_space(self, agent: str) -> spaces.Space[Any]:
        self._check_agent(agent)
        if agent == SPEAKER_ID:
            return spaces.Text(self.max_text_length, charset=_PRINTABLE)
        return self._listener_action_space

    def _check_agent(self, agent: str) -> None:
        if agent not in self.agents:
            raise KeyError(f"unknown agent {agent!r}; agents are {self.agents}")

    @property
    def to_act(self) -> tuple[str, ...]:
        return () if self._needs_reset else self.agents

    @property
    def phase(self) -> str:
        return "move"

    # ---------------------------------------------------------------------------------------- life cycle
    def reset(self, seed: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, _ = self.world_env.reset(seed=seed)
        self._needs_reset = False
        self._goal = int(self.world_env.goal[0])  # kept: the particle env draws the next goal when the episode ends
        self._t = 0
        self._error: str | None = None
        self._heard: list[int | None] = []
        self._outcome = TextOutcome(scores={a: 0.0 for a in self.agents}, invalid={a: 0 for a in self.agents})
        return self._observe(obs["listener"][0, 0]), {"to_act": self.to_act, "phase": "move", "message": None}

    def step(self, actions: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float], bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        if not isinstance(actions, Mapping) or set(actions) != set(self.agents):
            got = list(actions) if isinstance(actions, Mapping) else type(actions).__name__
            raise TextActionError(f"step expects actions from exactly {list(self.agents)}; got {got}")
        text = actions[SPEAKER_ID]
        if not isinstance(text, str):
            raise TextActionError(f"the action of {SPEAKER_ID!r} must be a str, got {type(text).__name__}")
        move = self._listener_force_action(actions[LISTENER_ID])

        symbol = parse_colour(text)
        message = np.zeros(3, dtype=np.float32) if symbol is None else np.eye(3, dtype=np.float32)[symbol]
        self._outcome.messages += 1
        self._outcome.tokens += self.count_tokens(text)
        self._outcome.transcript.append(Message(self._t, SPEAKER_ID, "talk", text))
        self._error = None
        if symbol is None:
            self._error = f"no colour found in {quote_text(text)}; say the goal's colour: red, green or blue"
            self._outcome.invalid[SPEAKER_ID] += 1
            self._outcome.transcript.append(Message(self._t, SPEAKER_ID, "invalid", self._error))
        self._heard.append(symbol)

        _, r, _, _, info = self.world_env.step({"speaker": message[None, None], "listener": move[None, None]})
        reward = float(r["listener"][0, 0])
        rewards = {SPEAKER_ID: reward + (self.invalid_penalty if symbol is None else 0.0), LISTENER_ID: reward}
        for a in self.agents:
            self._outcome.scores[a] += rewards[a]
        self._t += 1
        truncated = bool(info["episode_done"][0])  # the particle task has no terminal state, only its time limit
        listener_obs = info["final_obs"]["listener"][0, 0]  # before the particle env's own autoreset
        out_info: dict[str, Any] = {
            "to_act": () if truncated else self.agents,
            "phase": "move",
            "errors": {SPEAKER_ID: self._error} if self._error else {},
            "message": text,
            "symbol": symbol,
        }
        if truncated:
            self._finish(float(info["episode_metrics"]["final_goal_distance"][0]))
            out_info["outcome"] = self._outcome
            self._needs_reset = True
        return self._observe(listener_obs), rewards, False, truncated, out_info

    def outcome(self) -> TextOutcome:
        """The outcome so far (final once the episode has ended)."""
        return self._outcome

    # ---------------------------------------------------------------------------------------------- helpers
    def _listener_force_action(self, action: Any) -> np.ndarray:
        """The listener's action as the 5-vector the continuous particle env takes (a one-hot if discrete)."""
        if self.continuous_actions:
            a = np.asarray(action, dtype=np.float32)
            if a.shape != (5,) or not np.all((a >= 0.0) & (a <= 1.0)):
                raise ActionError(
                    f"{LISTENER_ID}'s action must be 5 floats in [0, 1] (Box(0, 1, (5,))), got {np.asarray(action)!r}"
                )
            return a
        a = np.asarray(action)
        if a.ndim != 0 or a.dtype.kind not in "iu" or not 0 <= int(a) < 5:
            raise ActionError(
                f"{LISTENER_ID}'s action must be an integer in 0..4 (0 no-op, 1 -x, 2 +x, 3 -y, 4 +y), got {action!r}"
            )
        return np.eye(5, dtype=np.float32)[int(action)]

    def _observe(self, listener_obs: np.ndarray) -> dict[str, Any]:
        lines = [
            f"You are the speaker. The listener must reach the {COLOURS[self._goal]} landmark; only you know "
            f"which one it is.",
            f"Step {min(self._t + 1, self.max_steps)} of {self.max_steps}.",
        ]
        if self._needs_reset:
            lines.append("Episode over.")
        else:
            lines.append('Tell the listener the goal\'s colour: say "red", "green" or "blue".')
        text = "\n".join(lines)
        if self._error:
            text = f"Error: {self._error}\n{text}"
        return {SPEAKER_ID: text, LISTENER_ID: np.array(listener_obs, dtype=np.float32)}

    def _finish(self, final_distance: float) -> None:
        goal, heard = self._goal, self._heard
        self._outcome.turns = self._t
        self._outcome.completed = final_distance < self.touch_distance
        self._outcome.extra.update(
            goal=COLOURS[goal],
            final_goal_distance=final_distance,
            message_accuracy=sum(h == goal for h in heard) / len(heard),
            heard=[None if h is None else COLOURS[h] for h in heard],
        )
