"""A small OpenAI-compatible server for a local Hugging Face model, on the standard library's ``http.server``.

``marlkit serve MODEL_DIR --port 8000`` (or ``ChatServer(HFPolicy...)`` in Python) answers

* ``GET  /v1/models``: the one model served, as ``{"object": "list", "data": [{"id": ...}]}``;
* ``POST /v1/chat/completions``: ``messages`` (roles and text contents), ``temperature``, ``top_p``, ``max_tokens``
  (or ``max_completion_tokens``), ``stop``, ``n``, ``seed``; the reply has ``choices``, ``finish_reason`` and
  ``usage`` (prompt and completion tokens counted by the model's tokenizer). Streaming is not supported.

so any OpenAI client (``OpenAIChatPolicy``, the ``openai`` package, curl) can use a model that lives on this
machine. The prompt is the tokenizer's chat template (``HFPolicy.chat_prompt``) and generation is
``HFPolicy.generate``, so answers are the ones the policy would give in Python.

**Batching.** ``ThreadingHTTPServer`` gives each request a thread; those threads do not touch the model. They queue
their prompts for one generation thread, which takes everything queued with the same sampling settings (up to
``max_batch`` prompts) and generates it as one left-padded batch. Concurrent clients therefore share forward passes,
and the model is only ever used by one thread. Requests that carry a ``seed`` run alone with a generator seeded
from it, so they are reproducible whatever else is queued. A request whose client hangs up while it waits in the
queue (a client that timed out, and will retry) is dropped before generation, so a slow server is not buried under
duplicates of the same work.

An API key can be required (``api_key``): requests must then send ``Authorization: Bearer <key>`` or get HTTP 401,
decided from the headers before any of the body is read. Without a key the server only binds a loopback address;
any other host needs ``allow_insecure_bind=True`` (``--allow-insecure-bind``) and then warns loudly.
Errors come back in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with a message that says
what was wrong and what is allowed.

**Limits.** A client cannot hold the server: every socket read waits at most ``read_timeout`` seconds (a stalled or
idle connection is closed), a request must be sent whole (line, headers, body) within ``request_timeout`` seconds of
its first byte (so trickling bytes does not keep a connection either), at most ``max_connections`` connections are
served at once (the next one gets HTTP 503 with ``Retry-After`` without being read), at most ``max_queue`` requests
wait for or are in generation (503 with ``Retry-After`` beyond that), bodies are at most ``max_body`` bytes (413) and
JSON nests at most ``MAX_DEPTH`` levels (400), and every field is type-checked (400 naming the field and what it
allows).
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import logging
import math
import queue
import select
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from marlkit.llm.hf import HFPolicy, Sampling

log = logging.getLogger(__name__)

#: Largest request body accepted by default, in bytes (``ChatServer(max_body=...)``).
MAX_BODY = 1 << 20
#: Deepest nesting of JSON arrays and objects accepted in a request body (a chat request needs about 4).
MAX_DEPTH = 32
#: Most answers one request may ask for (``n``).
MAX_N = 16
#: Seconds a client refused for being one too many is asked to wait (``Retry-After``).
RETRY_AFTER = 1
#: After refusing a request without reading its body, the server reads and drops up to this many bytes of it for up
#: to this many seconds before closing, so the client's unsent body does not reset the connection under the reply.
LINGER_BYTES, LINGER_SECONDS = 1 << 16, 1.0
_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_AUTH_MESSAGE = (
    "missing or wrong API key: send the header 'Authorization: Bearer <key>' with the key this server was started with"
)


class ClientGone(Exception):
    """The client hung up before its answer was generated; there is no one to reply to."""


class RequestError(ValueError):
    """A request the server refuses; becomes an OpenAI-style error reply with ``status`` (and ``Retry-After``)."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        param: str | None = None,
        kind: str = "invalid_request_error",
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.param, self.kind, self.retry_after = status, param, kind, retry_after

    def payload(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": None}}


class InsecureBindError(ValueError):
    """Serving on a non-loopback address without an API key was asked for but not explicitly allowed."""


class InsecureBindWarning(UserWarning):
    """The server listens beyond this machine with no API key (``allow_insecure_bind=True``)."""


def check_bind(host: str, api_key: str | None, allow_insecure_bind: bool) -> str | None:
    """Refuse (``InsecureBindError``) a keyless server on a non-loopback ``host`` unless allowed; when allowed, return
    the warning to show (None when the bind is safe)."""
    if api_key is not None or _is_loopback(host):
        return None
    if not allow_insecure_bind:
        raise InsecureBindError(
            f"refusing to serve on {host!r} without an API key: anyone who can reach it could use the model. Require "
            "a key (api_key=..., --api-key-env VAR), listen on 127.0.0.1, or accept the risk with "
            "allow_insecure_bind=True (--allow-insecure-bind)"
        )
    return (
        f"serving on {host!r} with NO API KEY: anyone who can reach this address can use the model "
        "(--api-key-env VAR requires a key)"
    )


def _is_loopback(host: str) -> bool:
    """Whether ``host`` (an IPv4 address or a name, resolved as the server's IPv4 socket would) is this machine only."""
    if not host:
        return False  # "" binds every interface
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


@dataclass
class _Job:
    prompts: list[list[int]]
    sampling: Sampling
    seed: int | None
    future: Future


class ChatServer(ThreadingHTTPServer):
    """An OpenAI-compatible chat server for one ``HFPolicy``; ``port=0`` picks a free port (see ``url``).

    ``read_timeout``, ``request_timeout``, ``max_connections``, ``max_queue`` and ``max_body`` are the limits of the
    module docstring;
    ``allow_insecure_bind`` permits a non-loopback ``host`` without ``api_key`` (with an ``InsecureBindWarning``).
    """

    daemon_threads = True

    def __init__(
        self,
        policy: HFPolicy,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str = "local",
        api_key: str | None = None,
        max_batch: int = 32,
        max_tokens_limit: int = 2048,
        *,
        read_timeout: float = 30.0,
        request_timeout: float = 60.0,
        max_connections: int = 64,
        max_queue: int = 32,
        max_body: int = MAX_BODY,
        allow_insecure_bind: bool = False,
    ) -> None:
        for name, value in (
            ("max_batch", max_batch),
            ("max_tokens_limit", max_tokens_limit),
            ("max_connections", max_connections),
            ("max_queue", max_queue),
            ("max_body", max_body),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, seconds in (("read_timeout", read_timeout), ("request_timeout", request_timeout)):
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {seconds!r}")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise ValueError("api_key must be a non-empty string, or None for no key")
        warning = check_bind(host, api_key, allow_insecure_bind)
        if warning is not None:
            warnings.warn(warning, InsecureBindWarning, stacklevel=2)
        super().__init__((host, port), _Handler)
        self.policy = policy
        self.model_name = model_name
        self.api_key = api_key
        self.max_batch = max_batch
        self.max_tokens_limit = max_tokens_limit
        self.read_timeout, self.request_timeout = float(read_timeout), float(request_timeout)
        self.max_connections, self.max_queue, self.max_body = max_connections, max_queue, max_body
        self.created = int(time.time())
        self.cancelled = 0  # jobs dropped because their client hung up before generation started
        self._lock = threading.Lock()
        self._connections = threading.BoundedSemaphore(max_connections)  # one per handler thread
        self._admitted = threading.BoundedSemaphore(max_queue)  # one per job queued or generating
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._generate_forever, name="marlkit-serve-generate", daemon=True)
        self._worker.start()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The API root for clients, e.g. ``http://127.0.0.1:8000/v1``."""
        host, port = self.server_address[:2]
        assert isinstance(host, str), "a bound TCP socket's address has a str host"
        return f"http://{host}:{port}/v1"

    def start(self) -> ChatServer:
        """Serve in a background thread (tests, notebooks); ``close()`` stops it."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="marlkit-serve", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self._jobs.put(None)
        self._worker.join()
        self.server_close()

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------- connections
    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection on its own thread, or refuse it with 503 when ``max_connections`` are being served."""
        if not self._connections.acquire(blocking=False):
            self._refuse_connection(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    def _refuse_connection(self, request: socket.socket) -> None:
        """503 on the accepting thread: never blocks on the client (non-blocking writes) and reads nothing of it."""
        e = RequestError(
            f"the server is busy: {self.max_connections} connections are already being served; retry "
            f"after {RETRY_AFTER} s",
            status=503,
            kind="server_error",
            retry_after=RETRY_AFTER,
        )
        data = json.dumps(e.payload()).encode()
        head = (
            f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(data)}"
            f"\r\nRetry-After: {RETRY_AFTER}\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            request.setblocking(False)
            request.sendall(head + data)  # a few hundred bytes into an empty send buffer
            while request.recv(1 << 16):  # drop what already arrived, so closing does not reset the reply
                pass
        except OSError:
            pass
        self.shutdown_request(request)

    # ---------------------------------------------------------------------------------------------- generation
    def generate(
        self,
        prompts: list[list[int]],
        sampling: Sampling,
        seed: int | None,
        client_connected: Callable[[], bool] | None = None,
    ) -> Any:
        """Queue prompts for the generation thread and wait for their ``Generation``.

        While the job waits in the queue, ``client_connected`` is polled: a client that hung up (typically one that
        timed out and will retry) has its job cancelled, so retries do not pile up duplicate work behind it.
        """
        if not self._admitted.acquire(blocking=False):
            raise RequestError(
                f"the server is busy: {self.max_queue} requests are already waiting or being generated; "
                f"retry after {RETRY_AFTER} s",
                status=503,
                kind="server_error",
                retry_after=RETRY_AFTER,
            )
        job = _Job(prompts, sampling, seed, Future())
        job.future.add_done_callback(lambda _: self._admitted.release())  # answered, failed or cancelled
        self._jobs.put(job)
        while True:
            try:
                return job.future.result(timeout=0.1)
            except FutureTimeout:
                if client_connected is not None and not client_connected() and job.future.cancel():
                    with self._lock:
                        self.cancelled += 1
                    raise ClientGone from None

    def _generate_forever(self) -> None:
        import torch

        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue  # its client hung up while it waited
            batch = [job]
            if job.seed is None:  # gather what else is waiting with the same settings
                waiting: list[_Job | None] = []
                while True:
                    try:
                        waiting.append(self._jobs.get_nowait())
                    except queue.Empty:
                        break
                size = len(job.prompts)
                for other in waiting:
                    if (
                        other is not None
                        and other.seed is None
                        and other.sampling == job.sampling
                        and size + len(other.prompts) <= self.max_batch
                    ):
                        if other.future.set_running_or_notify_cancel():
                            batch.append(other)
                            size += len(other.prompts)
                    else:
                        self._jobs.put(other)  # later (a None sentinel goes back too, so close() still stops us)
            try:
                generator = None
                if job.seed is not None:
                    generator = torch.Generator(device=self.policy.device)
                    generator.manual_seed(job.seed)
                gen = self.policy.generate([p for j in batch for p in j.prompts], job.sampling, generator)
                start = 0
                for j in batch:
                    j.future.set_result(_slice(gen, start, start + len(j.prompts)))
                    start += len(j.prompts)
            except Exception as e:  # noqa: BLE001 - handed to the waiting request threads, which report it
                for j in batch:
                    j.future.set_exception(e)

    # -------------------------------------------------------------------------------------------------- api
    def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": self.model_name, "object": "model", "created": self.created, "owned_by": "marlkit"}],
        }

    def chat_completion(self, body: Any, client_connected: Callable[[], bool] | None = None) -> dict[str, Any]:
        """The reply to a ``/v1/chat/completions`` request body (raises ``RequestError`` on bad input)."""
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        stream = body.get("stream")
        if stream is True:
            raise RequestError("streaming is not supported by this server; send stream=false", param="stream")
        if stream is not None and stream is not False:
            raise RequestError(f"stream must be true or false, got {_show(stream)}", param="stream")
        model = body.get("model")
        if model is None:
            model = self.model_name
        if not isinstance(model, str):
            raise RequestError(f"model must be a string, got {_show(model)}", param="model")
        if model != self.model_name:
            raise RequestError(
                f"unknown model {model!r}; this server serves {self.model_name!r}",
                status=404,
                param="model",
                kind="not_found_error",
            )
        messages = _messages(body.get("messages"))
        n = _integer(body, "n", 1, 1, MAX_N)
        seed = _integer(body, "seed", None, -(1 << 63), (1 << 64) - 1)  # what a torch.Generator takes
        sampling = self._sampling(body)
        prompt = self.policy.chat_prompt(messages)
        gen = self.generate([prompt] * n, sampling, seed, client_connected)
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length" if reason == "length" else "stop",
                "logprobs": None,
            }
            for i, (text, reason) in enumerate(zip(gen.completions, gen.finish_reasons))
        ]
        completion_tokens = sum(len(t) for t in gen.token_ids)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": completion_tokens,
                "total_tokens": len(prompt) + completion_tokens,
            },
        }

    def _sampling(self, body: dict[str, Any]) -> Sampling:
        default = self.policy.sampling
        name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        max_tokens = _integer(body, name, default.max_new_tokens, 1, self.max_tokens_limit)
        stop = body.get("stop")
        stops = () if stop is None else (stop,) if isinstance(stop, str) else stop
        if not isinstance(stops, (list, tuple)) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
            raise RequestError(
                f"stop must be a string or a list of up to 4 non-empty strings, got {_show(stop)}", param="stop"
            )
        temperature = _number(body, "temperature", 1.0)
        top_p = _number(body, "top_p", 1.0)
        try:
            return Sampling(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=tuple(stops))
        except ValueError as e:
            raise RequestError(str(e)) from None

    def authorized(self, header: str | None) -> bool:
        if self.api_key is None:
            return True
        expected = f"Bearer {self.api_key}".encode()
        return header is not None and hmac.compare_digest(header.encode(), expected)


def _show(value: Any) -> str:
    """A request value as the client wrote it (JSON), shortened for an error message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _integer(body: dict[str, Any], name: str, default: Any, low: int, high: int) -> Any:
    """``body[name]`` checked to be an integer in [low, high] (JSON true/false are not integers); absent or null
    gives ``default``."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(f"{name} must be an integer from {low} to {high}, got {_show(value)}", param=name)
    return value


def _number(body: dict[str, Any], name: str, default: float) -> float:
    """``body[name]`` checked to be a finite number (not true/false); absent or null gives ``default``."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise RequestError(f"{name} must be a finite number, got {_show(value)}", param=name)
    return float(value)


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays/objects in ``value`` nest more than ``limit`` levels (iterative: no recursion to overflow)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_body(raw: bytes) -> Any:
    """The JSON of a request body, or ``RequestError``: not JSON, NaN/Infinity, or nested deeper than ``MAX_DEPTH``.

    Python's parser recurses once per level and raises ``RecursionError`` on deep input; that is caught, and the
    depth of what did parse is checked, so a deep body is a 400 rather than a dead request thread.
    """
    too_deep = RequestError(
        f"the request body nests JSON arrays/objects more than {MAX_DEPTH} levels deep, the most this server accepts"
    )
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise too_deep from None
    except ValueError as e:  # includes a body that is not UTF-8
        raise RequestError(f"the request body is not valid JSON: {e}") from None
    if _nested_deeper_than(body, MAX_DEPTH):
        raise too_deep
    return body


def _messages(messages: Any) -> list[dict[str, str]]:
    """Check the ``messages`` field; text parts (``[{"type": "text", "text": ...}]``) are joined into one string."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list of {'role', 'content'} objects", param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
            raise RequestError(
                f"messages[{i}] must be an object with a role of 'system', 'developer', 'user' or "
                f"'assistant', got {str(m)[:100]!r}",
                param="messages",
            )
        content = m.get("content")
        if isinstance(content, list):
            if not all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
            ):
                raise RequestError(f"messages[{i}].content: only text parts are supported", param="messages")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise RequestError(
                f"messages[{i}].content must be a string, got {type(content).__name__}", param="messages"
            )
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
    return out


def _slice(gen: Any, start: int, stop: int) -> Any:
    from marlkit.llm.hf import Generation

    return Generation(
        texts=gen.texts[start:stop],
        completions=gen.completions[start:stop],
        prompt_ids=gen.prompt_ids[start:stop],
        token_ids=gen.token_ids[start:stop],
        logprobs=gen.logprobs[start:stop],
        finish_reasons=gen.finish_reasons[start:stop],
        how=gen.how[start:stop],
        action_logprobs=gen.action_logprobs[start:stop],
    )


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer
    protocol_version = "HTTP/1.1"
    _length = 0  # the body's declared size, once _check_headers accepted it

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced by a reader that knows the request's deadline (closing frees the socket's ref)
        self._deadline: float | None = None
        self.rfile = io.BufferedReader(_DeadlineReader(self))

    def handle_one_request(self) -> None:
        self._deadline = None  # set when the request's first byte arrives
        super().handle_one_request()

    def read_into(self, buffer: Any) -> int:
        """One socket read for ``rfile``: waits at most ``read_timeout``, and never past the request's deadline."""
        wait = self.server.read_timeout
        if self._deadline is not None:
            wait = min(wait, self._deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError(f"the request was not sent within {self.server.request_timeout:g} s")
        self.connection.settimeout(wait)
        n = self.connection.recv_into(buffer)
        if self._deadline is None and n:
            self._deadline = time.monotonic() + self.server.request_timeout
        return n

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue``: a request refused on its headers gets the refusal, not an invitation to send."""
        error = self._check_headers()
        if error is not None:
            self._refuse(error)
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        error = self._check_headers()
        if error is not None:
            self._refuse(error)
        elif self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(200, self.server.models())
        else:
            self._error(
                RequestError(
                    f"no route GET {self.path}; this server answers GET /v1/models and POST /v1/chat/completions",
                    status=404,
                    kind="not_found_error",
                )
            )

    def do_POST(self) -> None:
        error = self._check_headers()
        if error is not None:
            self._refuse(error)
            return
        try:
            raw = self.rfile.read(self._length)
        except TimeoutError:
            self._refuse(
                RequestError(
                    f"the request body did not arrive in time (a read may wait "
                    f"{self.server.read_timeout:g} s, the whole request "
                    f"{self.server.request_timeout:g} s)",
                    status=408,
                )
            )
            return
        if len(raw) < self._length:  # the client closed before sending all of it
            self.close_connection = True
            return
        try:
            self._send(200, self.server.chat_completion(parse_body(raw), self._client_connected))
        except ClientGone:
            self.close_connection = True
        except RequestError as e:
            self._error(e)
        except Exception as e:  # a server reports its own failures instead of dying
            log.exception("generation failed")
            self._error(RequestError(f"generation failed: {type(e).__name__}: {e}", status=500, kind="server_error"))

    def _check_headers(self) -> RequestError | None:
        """What can be refused from the request line and headers alone, before a byte of the body is read: the key
        first, then (POST) the route, the framing and the declared size."""
        if not self.server.authorized(self.headers.get("Authorization")):
            return RequestError(_AUTH_MESSAGE, status=401, kind="authentication_error")
        if self.command != "POST":
            return None
        if self.path.rstrip("/") not in _CHAT_PATHS:
            return RequestError(
                f"no route POST {self.path}; this server answers POST /v1/chat/completions and GET /v1/models",
                status=404,
                kind="not_found_error",
            )
        if self.headers.get("Transfer-Encoding"):
            return RequestError(
                "send the body with a Content-Length header; Transfer-Encoding is not supported", status=411
            )
        try:
            self._length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._length = -1
        if self._length < 0:
            return RequestError("the Content-Length header must be a non-negative integer")
        if self._length > self.server.max_body:
            return RequestError(
                f"request body of {self._length} bytes is over the limit of {self.server.max_body}", status=413
            )
        return None

    def _refuse(self, e: RequestError) -> None:
        """Reply and close without reading the body: drop what the client still sends for a moment (``LINGER_*``),
        so that closing with its bytes unread does not reset the connection before the reply is read."""
        self.close_connection = True
        self._error(e)
        try:
            self.connection.shutdown(socket.SHUT_WR)
            end, left = time.monotonic() + LINGER_SECONDS, LINGER_BYTES
            while left > 0 and (remaining := end - time.monotonic()) > 0:
                self.connection.settimeout(remaining)
                chunk = self.connection.recv(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:  # includes the timeout
            pass

    def _client_connected(self) -> bool:
        """False once the client has closed its connection (readable with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return not readable or self.connection.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def _error(self, e: RequestError) -> None:
        headers = {"Retry-After": str(e.retry_after)} if e.retry_after is not None else {}
        if self.close_connection:
            headers["Connection"] = "close"
        self._send(e.status, e.payload(), headers)

    def _send(self, status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client hung up while we were generating
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
        log.info("%s - %s", self.address_string(), format % args)  # the request line only: never headers


class _DeadlineReader(io.RawIOBase):
    """The raw side of a handler's ``rfile``: socket reads through ``_Handler.read_into``."""

    def __init__(self, handler: _Handler) -> None:
        self.handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self.handler.read_into(buffer)


def serve(
    model_dir: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str | None = None,
    api_key: str | None = None,
    gguf_file: str | None = None,
    max_new_tokens: int = 256,
    max_batch: int = 32,
    threads: int | None = None,
    allow_insecure_bind: bool = False,
) -> None:
    """Load ``model_dir`` (no download) and serve it until interrupted (what ``marlkit serve`` runs).

    ``threads`` sets torch's CPU threads; on a machine shared with other jobs, fewer threads than cores avoids
    threads spinning against each other (2 threads on a loaded 2-core machine ran SmolLM2 5x slower than 1).
    The bind is checked (``check_bind``) before the model is loaded; an allowed insecure bind is announced on stderr.
    """
    import os

    warning = check_bind(host, api_key, allow_insecure_bind)
    if warning is not None:
        bar = "!" * 100
        print(f"{bar}\nWARNING: {warning}\n{bar}", file=sys.stderr, flush=True)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    policy = HFPolicy.from_pretrained(model_dir, gguf_file=gguf_file, max_new_tokens=max_new_tokens)
    name = model_name or os.path.basename(os.path.normpath(model_dir))
    with warnings.catch_warnings():  # announced above, once
        warnings.simplefilter("ignore", InsecureBindWarning)
        server = ChatServer(
            policy,
            host,
            port,
            model_name=name,
            api_key=api_key,
            max_batch=max_batch,
            allow_insecure_bind=allow_insecure_bind,
        )
    print(f"serving {name!r} at {server.url} (POST /chat/completions, GET /models); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
