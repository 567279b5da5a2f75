"""Any OpenAI-compatible chat-completions server as a text policy (inference only).

``OpenAIChatPolicy(base_url, model).act(observations)`` sends one ``POST {base_url}/chat/completions`` per
observation (the system prompt, then the observation as the user's turn) and returns the answers in order. It is
written for long evaluation runs against real servers (OpenAI, vLLM, llama.cpp, Ollama, ``marlkit serve``):

* **Concurrency**: the requests of a batch run on up to ``concurrency`` threads sharing one ``httpx.Client``.
* **Rate limit**: a token bucket (``requests_per_second``, ``burst``) spaces requests on the client side, so a run
  stays under a provider's quota instead of bouncing off it.
* **Retries**: HTTP 429 and 5xx answers, connection errors and timeouts are retried up to ``max_retries`` times.
  The wait is the server's ``Retry-After`` when it sends one, else exponential backoff with jitter
  (``backoff * 2**attempt`` times a random factor in [0.5, 1]), so many clients that failed together do not retry
  together; either way it is capped at ``max_backoff``, whatever the server asks for.
* **Timeouts**: ``timeout`` bounds each network read (the longest silence tolerated) and ``connect_timeout`` each
  connection; ``deadline`` bounds a whole request, every attempt and wait included. It is checked before each
  attempt and wait (a wait that would end past it is not begun), no read of an attempt is given longer than the time
  left when the attempt began, and it is checked again as each piece of the answer's body arrives, so neither a
  stalled server nor a trickled body keeps a request past it. Past it, ``APIDeadlineError``. (Response headers are
  read by httpx without a check between pieces: a server trickling its headers is bounded per read only.)
* **Token accounting**: ``usage`` adds up the ``usage`` field of every reply (prompt and completion tokens).
* **Clear errors**: a refused key, a wrong URL, a reply that is not JSON or not a chat completion (a missing or
  mistyped field, named in the message) each raise an ``APIError`` subclass that says what was wrong and what to
  check.

The API key is read from an environment variable (``OPENAI_API_KEY`` by default) when the policy is built and sent
as ``Authorization: Bearer ...``; it is never printed, logged or put in an error message. Local servers that need no
key work with the variable unset. A key bound for plain ``http://`` on a host other than this machine would cross the
network unencrypted: that gives a ``PlaintextKeyWarning``, once per host.

``transport`` (an ``httpx`` transport, e.g. ``httpx.MockTransport``), ``clock`` and ``sleep`` are seams for tests.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import math
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

#: HTTP statuses worth retrying: rate limited, and the server's own failures.
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
#: Largest answer body read, in bytes; a chat completion is far smaller.
MAX_RESPONSE_BYTES = 32 << 20


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


class APIDeadlineError(APIConnectionError):
    """A request (its attempts and the waits between them) did not get an answer within ``deadline``."""


class PlaintextKeyWarning(UserWarning):
    """The API key is about to be sent unencrypted (``http://``) to a host other than this machine."""


_warned_hosts: set[str] = set()
_warned_lock = threading.Lock()


def _warn_plaintext_key(url: Any, api_key_env: str) -> None:
    """``PlaintextKeyWarning`` (once per host and port) when ``url`` is plain http to a non-loopback host."""
    host = url.host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: only localhost is known to be this machine without asking DNS
        loopback = host == "localhost" or host.endswith(".localhost")
    if url.scheme != "http" or loopback:
        return
    where = f"{host}:{url.port or 80}"
    with _warned_lock:
        if where in _warned_hosts:
            return
        _warned_hosts.add(where)
    warnings.warn(
        f"the API key from {api_key_env} will be sent unencrypted over plain http:// to {host!r}, which is "
        "not this machine: anyone on the way can read it; use https://",
        PlaintextKeyWarning,
        stacklevel=3,
    )


class _DeadlinePassed(Exception):
    """The deadline passed while an answer was arriving."""


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
    ``deadline`` is the most seconds one request may take, retries and waits included (None: no limit beyond
    ``timeout`` per read and ``max_retries``). ``transport``, ``clock`` and ``sleep`` exist for tests (a fake clock
    checks rate-limit, backoff and deadline waits without waiting).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        system_prompt: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_tokens: int = 64,
        stop: Sequence[str] = (),
        seed: int | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        deadline: float | None = 600.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        requests_per_second: float | None = None,
        burst: int = 1,
        concurrency: int = 8,
        extra_body: Mapping[str, Any] | None = None,
        transport: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1), got {base_url!r}"
            )
        if not model or not isinstance(model, str):
            raise ValueError(f"model must be the server's model name (a non-empty string), got {model!r}")
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout), ("max_backoff", max_backoff)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        if deadline is not None and not deadline > 0:
            raise ValueError(f"deadline must be > 0 seconds or None, got {deadline!r}")
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
        self.deadline = deadline
        self.clock, self.sleep = clock, sleep
        self.usage = Usage()
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env) if api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._key_state = "set" if key else "not set"
        if key:
            _warn_plaintext_key(httpx.URL(self.base_url), api_key_env)
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=connect_timeout), transport=transport
        )
        self._timeout, self._connect_timeout = timeout, connect_timeout
        self._lock = threading.Lock()
        self._jitter = random.Random(seed)
        self._requests_made = 0

    def __repr__(self) -> str:  # never shows the key
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
        """Seconds to wait before retry number ``attempt + 1``: the server's Retry-After, else jittered backoff; never
        more than ``max_backoff``."""
        if retry_after is not None:
            return min(self.max_backoff, retry_after)
        with self._lock:
            factor = self._jitter.uniform(0.5, 1.0)
        return min(self.max_backoff, self.backoff * 2**attempt) * factor

    def _request(self, body: dict[str, Any]) -> ChatReply:
        import httpx

        end = math.inf if self.deadline is None else self.clock() + self.deadline
        failure = ""  # what went wrong last, for the deadline's message
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            if self.limiter is not None:
                wait = self.limiter.reserve()
                if wait > 0:
                    self._wait(wait, end, attempt, failure)
            left = end - self.clock()
            if left <= 0:
                raise self._deadline_error(attempt, failure)
            timeout = httpx.Timeout(min(self._timeout, left), connect=min(self._connect_timeout, left))
            try:
                status, headers, content = self._post(body, timeout, end)
            except _DeadlinePassed:
                raise self._deadline_error(attempt + 1, "the answer was still arriving") from None
            except httpx.TimeoutException as e:
                if self.clock() >= end:
                    raise self._deadline_error(attempt + 1, f"{type(e).__name__}") from e
                if last:
                    raise APIConnectionError(
                        f"no answer from {self.url} within {self._timeout:g} s ({type(e).__name__}) after "
                        f"{attempt + 1} attempts; raise timeout= or check the server"
                    ) from e
                failure = type(e).__name__
                self._retry(attempt, None, end, failure)
                continue
            except httpx.TransportError as e:
                if last:
                    raise APIConnectionError(
                        f"could not reach {self.url} after {attempt + 1} attempts ({type(e).__name__}: {e}); "
                        "is the server running and is base_url right?"
                    ) from e
                failure = f"{type(e).__name__}: {e}"
                self._retry(attempt, None, end, failure)
                continue
            except httpx.DecodingError as e:
                raise APIResponseError(f"{self.url} sent a body that cannot be decoded ({e})") from e
            if status in RETRY_STATUSES and not last:
                failure = f"HTTP {status}{_server_says(content)}"
                self._retry(attempt, parse_retry_after(headers.get("retry-after")), end, failure)
                continue
            return self._parse(status, content, attempts=attempt + 1)
        raise AssertionError("unreachable")

    def _post(self, body: dict[str, Any], timeout: Any, end: float) -> tuple[int, Any, bytes]:
        """Send one attempt and read its answer: (status, headers, body), checking the deadline as pieces arrive."""
        with self._client.stream("POST", self.url, json=body, timeout=timeout) as response:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise APIResponseError(
                        f"{self.url} sent more than {MAX_RESPONSE_BYTES} bytes; a chat completion "
                        "is far smaller: is base_url an OpenAI-compatible API root?"
                    )
                chunks.append(chunk)
                if self.clock() > end:
                    raise _DeadlinePassed
            return response.status_code, response.headers, b"".join(chunks)

    def _retry(self, attempt: int, retry_after: float | None, end: float, failure: str) -> None:
        self._wait(self.backoff_wait(attempt, retry_after), end, attempt + 1, failure)
        with self._lock:
            self.usage.retries += 1

    def _wait(self, seconds: float, end: float, attempts: int, failure: str) -> None:
        """Sleep ``seconds``, or give up now if the deadline would pass before they are over."""
        if self.clock() + seconds >= end:
            raise self._deadline_error(attempts, failure)
        self.sleep(seconds)

    def _deadline_error(self, attempts: int, failure: str) -> APIDeadlineError:
        last = f"; the last attempt: {failure}" if failure else ""
        return APIDeadlineError(
            f"no answer from {self.url} within the deadline of {self.deadline:g} s ({attempts} "
            f"attempts){last}; raise deadline= or check the server"
        )

    def _parse(self, status: int, content: bytes, attempts: int) -> ChatReply:
        if status in (401, 403):
            raise APIAuthError(
                f"HTTP {status} from {self.url}: the server refused the API key (read from the environment variable "
                f"{self.api_key_env}, which is {self._key_state}){_server_says(content)}"
            )
        if status == 404:
            raise APIStatusError(
                f"HTTP 404 from {self.url}: no such endpoint or model {self.model!r}{_server_says(content)}; "
                "base_url should be the API root that holds /chat/completions (usually ending in /v1)",
                status,
            )
        if status >= 400:
            tried = f" after {attempts} attempts" if attempts > 1 else ""
            raise APIStatusError(f"HTTP {status} from {self.url}{tried}{_server_says(content)}", status)
        try:
            data = json.loads(content)
        except (ValueError, RecursionError) as e:
            why = "nested too deeply to parse" if isinstance(e, RecursionError) else _text(content)[:200]
            raise APIResponseError(
                f"{self.url} answered HTTP {status} with a body that is not JSON ({why!r}); is base_url an "
                "OpenAI-compatible API root (usually ending in /v1)?"
            ) from None
        try:
            text, finish_reason, prompt_tokens, completion_tokens = _read_completion(data)
        except _Malformed as e:
            raise APIResponseError(
                f"{self.url} answered JSON that is not a chat completion: {e}; got {_short(data, 200)}"
            ) from None
        with self._lock:
            self.usage.requests += 1
            self.usage.prompt_tokens += prompt_tokens
            self.usage.completion_tokens += completion_tokens
        return ChatReply(text, finish_reason, prompt_tokens, completion_tokens)


class _Malformed(Exception):
    """What is wrong with a chat completion, in words."""


def _read_completion(data: Any) -> tuple[str, str | None, int, int]:
    """(text, finish_reason, prompt_tokens, completion_tokens) of a chat completion, or ``_Malformed`` naming the
    first field that is missing or of the wrong type (a null ``content`` is an empty answer, a null or missing
    ``usage`` counts no tokens)."""
    if not isinstance(data, dict):
        raise _Malformed(f"the body is a JSON {_json_type(data)}, not an object")
    if "choices" not in data:
        raise _Malformed("choices is missing (expected choices[0].message.content)")
    choices = data["choices"]
    if not isinstance(choices, list) or not choices:
        raise _Malformed(f"choices must be a non-empty list, got {_short(choices)}")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _Malformed(f"choices[0] must be an object, got {_short(choice)}")
    message = choice.get("message")
    if not isinstance(message, dict):
        raise _Malformed(f"choices[0].message must be an object, got {_short(message)}")
    text = message.get("content")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise _Malformed(f"choices[0].message.content must be a string or null, got {_short(text)}")
    finish_reason = choice.get("finish_reason")
    if finish_reason is not None and not isinstance(finish_reason, str):
        raise _Malformed(f"choices[0].finish_reason must be a string or null, got {_short(finish_reason)}")
    usage = data.get("usage")
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise _Malformed(f"usage must be an object or null, got {_short(usage)}")
    counts = []
    for key in ("prompt_tokens", "completion_tokens"):
        value = usage.get(key)
        if value is None:
            value = 0
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _Malformed(f"usage.{key} must be a non-negative integer, got {_short(value)}")
        counts.append(value)
    return text, finish_reason, counts[0], counts[1]


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _short(value: Any, limit: int = 80) -> str:
    """A JSON value as the server sent it, shortened for a message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        try:
            text = repr(value)
        except RecursionError:
            text = f"(a deeply nested {_json_type(value)})"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(content: bytes) -> str:
    return content.decode("utf-8", errors="replace")


def _server_says(content: bytes) -> str:
    """``"; server said: ..."`` from an OpenAI-style error body (or the start of the raw body), or ``""``."""
    try:
        data = json.loads(content)
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message", error) if isinstance(error, dict) else error or data
    except (ValueError, RecursionError):
        message = _text(content)
    if not isinstance(message, str):
        message = _short(message, 300)
    message = message.strip()[:300]
    return f"; server said: {message}" if message else ""
