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

An API key can be required (``api_key``): requests must then send ``Authorization: Bearer <key>`` or get HTTP 401.
Errors come back in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with a message that says
what was wrong and what is allowed.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from marlkit.llm.hf import HFPolicy, Sampling

log = logging.getLogger(__name__)

#: Largest request body accepted, in bytes.
MAX_BODY = 1 << 20
#: Most answers one request may ask for (``n``).
MAX_N = 16


class ClientGone(Exception):
    """The client hung up before its answer was generated; there is no one to reply to."""


class RequestError(ValueError):
    """A request the server refuses; becomes an OpenAI-style error reply with ``status``."""

    def __init__(self, message: str, status: int = 400, param: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.param, self.kind = status, param, kind


@dataclass
class _Job:
    prompts: list[list[int]]
    sampling: Sampling
    seed: int | None
    future: Future


class ChatServer(ThreadingHTTPServer):
    """An OpenAI-compatible chat server for one ``HFPolicy``; ``port=0`` picks a free port (see ``url``)."""

    daemon_threads = True

    def __init__(self, policy: HFPolicy, host: str = "127.0.0.1", port: int = 0, model_name: str = "local",
                 api_key: str | None = None, max_batch: int = 32, max_tokens_limit: int = 2048) -> None:
        super().__init__((host, port), _Handler)
        self.policy = policy
        self.model_name = model_name
        self.api_key = api_key
        self.max_batch = max_batch
        self.max_tokens_limit = max_tokens_limit
        self.created = int(time.time())
        self.cancelled = 0   # jobs dropped because their client hung up before generation started
        self._lock = threading.Lock()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._generate_forever, name="marlkit-serve-generate", daemon=True)
        self._worker.start()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The API root for clients, e.g. ``http://127.0.0.1:8000/v1``."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ChatServer:
        """Serve in a background thread (tests, notebooks); ``close()`` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="marlkit-serve", daemon=True)
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

    # ---------------------------------------------------------------------------------------------- generation
    def generate(self, prompts: list[list[int]], sampling: Sampling, seed: int | None,
                 client_connected: Callable[[], bool] | None = None) -> Any:
        """Queue prompts for the generation thread and wait for their ``Generation``.

        While the job waits in the queue, ``client_connected`` is polled: a client that hung up (typically one that
        timed out and will retry) has its job cancelled, so retries do not pile up duplicate work behind it.
        """
        job = _Job(prompts, sampling, seed, Future())
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
                continue   # its client hung up while it waited
            batch = [job]
            if job.seed is None:   # gather what else is waiting with the same settings
                waiting: list[_Job | None] = []
                while True:
                    try:
                        waiting.append(self._jobs.get_nowait())
                    except queue.Empty:
                        break
                size = len(job.prompts)
                for other in waiting:
                    if other is not None and other.seed is None and other.sampling == job.sampling \
                            and size + len(other.prompts) <= self.max_batch:
                        if other.future.set_running_or_notify_cancel():
                            batch.append(other)
                            size += len(other.prompts)
                    else:
                        self._jobs.put(other)   # later (a None sentinel goes back too, so close() still stops us)
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
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "created": self.created,
                                            "owned_by": "marlkit"}]}

    def chat_completion(self, body: Any, client_connected: Callable[[], bool] | None = None) -> dict[str, Any]:
        """The reply to a ``/v1/chat/completions`` request body (raises ``RequestError`` on bad input)."""
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        if body.get("stream"):
            raise RequestError("streaming is not supported by this server; send stream=false", param="stream")
        model = body.get("model", self.model_name)
        if model != self.model_name:
            raise RequestError(f"unknown model {model!r}; this server serves {self.model_name!r}", status=404,
                               param="model", kind="not_found_error")
        messages = _messages(body.get("messages"))
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
            raise RequestError(f"n must be an integer from 1 to {MAX_N}, got {n!r}", param="n")
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise RequestError(f"seed must be an integer, got {seed!r}", param="seed")
        sampling = self._sampling(body)
        prompt = self.policy.chat_prompt(messages)
        gen = self.generate([prompt] * n, sampling, seed, client_connected)
        choices = [{"index": i, "message": {"role": "assistant", "content": text},
                    "finish_reason": "length" if reason == "length" else "stop", "logprobs": None}
                   for i, (text, reason) in enumerate(zip(gen.completions, gen.finish_reasons))]
        completion_tokens = sum(len(t) for t in gen.token_ids)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": self.model_name, "choices": choices,
                "usage": {"prompt_tokens": len(prompt), "completion_tokens": completion_tokens,
                          "total_tokens": len(prompt) + completion_tokens}}

    def _sampling(self, body: dict[str, Any]) -> Sampling:
        default = self.policy.sampling
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens")) or default.max_new_tokens
        if not isinstance(max_tokens, int) or not 1 <= max_tokens <= self.max_tokens_limit:
            raise RequestError(f"max_tokens must be an integer from 1 to {self.max_tokens_limit}, got {max_tokens!r}",
                               param="max_tokens")
        stop = body.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else stop
        if not isinstance(stop, (list, tuple)) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
            raise RequestError(f"stop must be a string or a list of up to 4 non-empty strings, got {body['stop']!r}",
                               param="stop")
        temperature = body.get("temperature", 1.0)
        top_p = body.get("top_p", 1.0)
        for name, value in (("temperature", temperature), ("top_p", top_p)):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise RequestError(f"{name} must be a number, got {value!r}", param=name)
        try:
            return Sampling(max_new_tokens=max_tokens, temperature=float(temperature), top_p=float(top_p),
                            stop=tuple(stop))
        except ValueError as e:
            raise RequestError(str(e)) from None

    def authorized(self, header: str | None) -> bool:
        if self.api_key is None:
            return True
        expected = f"Bearer {self.api_key}".encode()
        return header is not None and hmac.compare_digest(header.encode(), expected)


def _messages(messages: Any) -> list[dict[str, str]]:
    """Check the ``messages`` field; text parts (``[{"type": "text", "text": ...}]``) are joined into one string."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list of {'role', 'content'} objects", param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
            raise RequestError(f"messages[{i}] must be an object with a role of 'system', 'developer', 'user' or "
                               f"'assistant', got {str(m)[:100]!r}", param="messages")
        content = m.get("content")
        if isinstance(content, list):
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise RequestError(f"messages[{i}].content: only text parts are supported", param="messages")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise RequestError(f"messages[{i}].content must be a string, got {type(content).__name__}",
                               param="messages")
        out.append({"role": "system" if m["role"] == "developer" else m["role"], "content": content})
    return out


def _slice(gen: Any, start: int, stop: int) -> Any:
    from marlkit.llm.hf import Generation

    return Generation(texts=gen.texts[start:stop], completions=gen.completions[start:stop],
                      prompt_ids=gen.prompt_ids[start:stop], token_ids=gen.token_ids[start:stop],
                      logprobs=gen.logprobs[start:stop], finish_reasons=gen.finish_reasons[start:stop],
                      how=gen.how[start:stop], action_logprobs=gen.action_logprobs[start:stop])


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._check_auth():
            return
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(200, self.server.models())
        else:
            self._error(RequestError(f"no route GET {self.path}; this server answers GET /v1/models and "
                                     "POST /v1/chat/completions", status=404, kind="not_found_error"))

    def do_POST(self) -> None:  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._error(RequestError("the Content-Length header must be a non-negative integer", status=400))
            return
        if length > MAX_BODY:
            self.close_connection = True
            self._error(RequestError(f"request body of {length} bytes is over the limit of {MAX_BODY}", status=413))
            return
        raw = self.rfile.read(length)
        if not self._check_auth():
            return
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(RequestError(f"no route POST {self.path}; this server answers POST /v1/chat/completions "
                                     "and GET /v1/models", status=404, kind="not_found_error"))
            return
        try:
            body = json.loads(raw)
        except ValueError as e:
            self._error(RequestError(f"the request body is not valid JSON: {e}"))
            return
        try:
            self._send(200, self.server.chat_completion(body, self._client_connected))
        except ClientGone:
            self.close_connection = True
        except RequestError as e:
            self._error(e)
        except Exception as e:  # noqa: BLE001 - a server reports its own failures instead of dying
            log.exception("generation failed")
            self._error(RequestError(f"generation failed: {type(e).__name__}: {e}", status=500, kind="server_error"))

    def _client_connected(self) -> bool:
        """False once the client has closed its connection (readable with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return not readable or self.connection.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def _check_auth(self) -> bool:
        if self.server.authorized(self.headers.get("Authorization")):
            return True
        self._error(RequestError("missing or wrong API key: send the header 'Authorization: Bearer <key>' with the "
                                 "key this server was started with", status=401, kind="authentication_error"))
        return False

    def _error(self, e: RequestError) -> None:
        self._send(e.status, {"error": {"message": str(e), "type": e.kind, "param": e.param, "code": None}})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:   # the client hung up while we were generating
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.info("%s - %s", self.address_string(), format % args)   # the request line only: never headers


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8000, model_name: str | None = None,
          api_key: str | None = None, gguf_file: str | None = None, max_new_tokens: int = 256,
          max_batch: int = 32, threads: int | None = None) -> None:
    """Load ``model_dir`` (no download) and serve it until interrupted (what ``marlkit serve`` runs).

    ``threads`` sets torch's CPU threads; on a machine shared with other jobs, fewer threads than cores avoids
    threads spinning against each other (2 threads on a loaded 2-core machine ran SmolLM2 5x slower than 1).
    """
    import os

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    policy = HFPolicy.from_pretrained(model_dir, gguf_file=gguf_file, max_new_tokens=max_new_tokens)
    name = model_name or os.path.basename(os.path.normpath(model_dir))
    server = ChatServer(policy, host, port, model_name=name, api_key=api_key, max_batch=max_batch)
    print(f"serving {name!r} at {server.url} (POST /chat/completions, GET /models); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
