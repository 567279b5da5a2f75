"""Any OpenAI-compatible chat-completions server as a text policy (inference only).

``OpenAIChatPolicy(base_url, model).act(observations)`` sends one ``POST {base_url}/chat/completions`` per
observation (the system prompt, then the observation as the user's turn) and returns the answers in order. It is
written for long evaluation runs against real servers (OpenAI, vLLM, llama.cpp, Ollama, ``marlkit serve``):

* **Concurrency**: the requests of a batch run on up to ``concurrency`` threads sharing one ``httpx.Client``.
* **Rate limit**: a token bucket (``requests_per_second``, ``burst``) spaces requests on the client side, so a run
  stays under a provider's quota instead of bouncing off it.
* **Retries**: HTTP 429 and 5xx answers, connection errors and timeouts are retried up to ``max_retries`` times.
  The wait is the server's ``Retry-After`` when it sends one, else exponential backoff with jitter
  (``backoff * 2**attempt``, capped at ``max_backoff``, times a random factor in [0.5, 1]), so many clients that
  failed together do not retry together.
* **Token accounting**: ``usage`` adds up the ``usage`` field of every reply (prompt and completion tokens).
* **Clear errors**: a refused key, a wrong URL, a reply that is not JSON or not a chat completion each raise an
  ``APIError`` subclass that says what was wrong and what to check.

The API key is read from an environment variable (``OPENAI_API_KEY`` by default) when the policy is built and sent
as ``Authorization: Bearer ...``; it is never printed, logged or put in an error message. Local servers that need no
key work with the variable unset.
"""

from __future__ import annotations

import email.utils
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

#: HTTP statuses worth retrying: rate limited, and the server's own failures.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class APIError(RuntimeError):
    """A request to the chat-completions server failed; the message says why and what to check."""


class APIAuthError(APIError):
    """The server refused the API key (HTTP 401 or 403)."""


class APIStatusError(APIError):
    """The server answered with an HTTP error that retrying does not fix (or kept failing after every retry)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class APIResponseError(APIError):
    """The server answered 200 but not with a chat completion (not JSON, or missing fields)."""


class APIConnectionError(APIError):
    """The server could not be reached, or did not answer within the timeout, after every retry."""


@dataclass
class Usage:
    """Running totals over every successful request of a policy."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatReply:
    """One answer: its text, why it ended, and the tokens the server counted for it."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class TokenBucket:
    """Client-side rate limit: on average ``rate`` requests per second, at most ``burst`` at once.

    ``reserve()`` takes one token and returns how long the caller must wait before sending. Tokens may go negative
    (a reservation), so concurrent callers get increasing waits instead of racing. The clock is injectable, so the
    waits can be checked exactly without sleeping.
    """

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests per second, got {rate!r}")
        if not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be a positive integer, got {burst!r}")
        self.rate, self.burst, self.clock = float(rate), burst, clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay in seconds, or an HTTP date); None if absent/invalid."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class OpenAIChatPolicy:
    """A ``TextPolicy`` backed by an OpenAI-compatible ``/chat/completions`` endpoint; see the module docstring.

    ``seed``, when given, is sent with each request as ``seed + k`` for the k-th request this policy makes (counted
    in batch order), so a run that makes the same calls asks for the same samples; servers honour it as they can.
    ``clock`` and ``sleep`` exist for tests (a fake clock checks rate-limit and backoff waits without waiting).
    """

    def __init__(self, base_url: str, model: str, *, system_prompt: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", temperature: float = 1.0, top_p: float = 1.0,
                 max_tokens: int = 64, stop: Sequence[str] = (), seed: int | None = None,
                 timeout: float = 60.0, connect_timeout: float = 10.0, max_retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0, requests_per_second: float | None = None,
                 burst: int = 1, concurrency: int = 8, extra_body: Mapping[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        import httpx

        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1), "
                             f"got {base_url!r}")
        if not model or not isinstance(model, str):
            raise ValueError(f"model must be the server's model name (a non-empty string), got {model!r}")
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout), ("max_backoff", max_backoff)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        if not backoff >= 0:
            raise ValueError(f"backoff must be >= 0 seconds, got {backoff!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.system_prompt = system_prompt
        self.params: dict[str, Any] = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
        if stop:
            self.params["stop"] = [stop] if isinstance(stop, str) else list(stop)
        self.params.update(extra_body or {})
        self.seed = seed
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.concurrency = concurrency
        self.limiter = TokenBucket(requests_per_second, burst, clock) if requests_per_second else None
        self.sleep = sleep
        self.usage = Usage()
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env) if api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._key_state = "set" if key else "not set"
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=connect_timeout))
        self._timeout = timeout
        self._lock = threading.Lock()
        self._jitter = random.Random(seed)
        self._requests_made = 0

    def __repr__(self) -> str:   # never shows the key
        return f"OpenAIChatPolicy(base_url={self.base_url!r}, model={self.model!r})"

    # ---------------------------------------------------------------------------------------------------- api
    def act(self, observations: Sequence[str]) -> list[str]:
        return [r.text for r in self.act_with_replies(observations)]

    def act_with_replies(self, observations: Sequence[str]) -> list[ChatReply]:
        """Answer every observation; return the replies (text, finish reason, token counts) in order."""
        if isinstance(observations, str):
            raise TypeError("observations must be a sequence of strings (a batch), not a single string")
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return self.chat([[*system, {"role": "user", "content": o}] for o in observations])

    def chat(self, conversations: Sequence[Sequence[Mapping[str, str]]]) -> list[ChatReply]:
        """One chat completion per conversation (a list of ``{"role", "content"}`` messages), concurrently."""
        with self._lock:
            first = self._requests_made
            self._requests_made += len(conversations)
        bodies = []
        for k, messages in enumerate(conversations):
            body = {"model": self.model, "messages": [dict(m) for m in messages], **self.params}
            if self.seed is not None:
                body["seed"] = self.seed + first + k
            bodies.append(body)
        if len(bodies) <= 1 or self.concurrency == 1:
            return [self._request(b) for b in bodies]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies))) as pool:
            return list(pool.map(self._request, bodies))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIChatPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------- requests
    def backoff_wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt + 1``: the server's Retry-After, else jittered backoff."""
        if retry_after is not None:
            return retry_after
        with self._lock:
            factor = self._jitter.uniform(0.5, 1.0)
        return min(self.max_backoff, self.backoff * 2 ** attempt) * factor

    def _request(self, body: dict[str, Any]) -> ChatReply:
        import httpx

        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            if self.limiter is not None:
                wait = self.limiter.reserve()
                if wait > 0:
                    self.sleep(wait)
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TimeoutException as e:
                if last:
                    raise APIConnectionError(
                        f"no answer from {self.url} within {self._timeout:g} s ({type(e).__name__}) after "
                        f"{attempt + 1} attempts; raise timeout= or check the server") from e
                self._retry(attempt, None)
                continue
            except httpx.TransportError as e:
                if last:
                    raise APIConnectionError(
                        f"could not reach {self.url} after {attempt + 1} attempts ({type(e).__name__}: {e}); "
                        "is the server running and is base_url right?") from e
                self._retry(attempt, None)
                continue
            if response.status_code in RETRY_STATUSES and not last:
                self._retry(attempt, parse_retry_after(response.headers.get("retry-after")))
                continue
            return self._parse(response, attempts=attempt + 1)
        raise AssertionError("unreachable")

    def _retry(self, attempt: int, retry_after: float | None) -> None:
        with self._lock:
            self.usage.retries += 1
        self.sleep(self.backoff_wait(attempt, retry_after))

    def _parse(self, response: Any, attempts: int) -> ChatReply:
        status = response.status_code
        if status in (401, 403):
            raise APIAuthError(
                f"HTTP {status} from {self.url}: the server refused the API key (read from the environment variable "
                f"{self.api_key_env}, which is {self._key_state}){_server_says(response)}")
        if status == 404:
            raise APIStatusError(
                f"HTTP 404 from {self.url}: no such endpoint or model {self.model!r}{_server_says(response)}; "
                "base_url should be the API root that holds /chat/completions (usually ending in /v1)", status)
        if status >= 400:
            tried = f" after {attempts} attempts" if attempts > 1 else ""
            raise APIStatusError(f"HTTP {status} from {self.url}{tried}{_server_says(response)}", status)
        try:
            data = response.json()
        except ValueError:
            raise APIResponseError(
                f"{self.url} answered HTTP {status} with a body that is not JSON ({response.text[:200]!r}); is "
                "base_url an OpenAI-compatible API root (usually ending in /v1)?") from None
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"]
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise TypeError(type(text).__name__)
        except (KeyError, IndexError, TypeError) as e:
            raise APIResponseError(
                f"{self.url} answered JSON that is not a chat completion (missing or bad choices[0].message.content:"
                f" {e}); got {str(data)[:200]!r}") from None
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        with self._lock:
            self.usage.requests += 1
            self.usage.prompt_tokens += prompt_tokens
            self.usage.completion_tokens += completion_tokens
        return ChatReply(text, choice.get("finish_reason"), prompt_tokens, completion_tokens)


def _server_says(response: Any) -> str:
    """``"; server said: ..."`` from an OpenAI-style error body (or the start of the raw body), or ``""``."""
    try:
        data = response.json()
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else data.get("error") or data
    except (ValueError, AttributeError, KeyError, TypeError):
        message = response.text
    message = str(message).strip()[:300]
    return f"; server said: {message}" if message else ""
