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
JSON nests at most ``serve_http.MAX_DEPTH`` levels (400), and every field is type-checked (400 naming the field and
what it allows).

The HTTP side (the request handler, those limits and checks, the errors and the bind check) is
``marlkit.llm.serve_http``; this module is the server, its generation thread and ``serve``.
"""

from __future__ import annotations

import hmac
import json
import queue
import socket
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from marlkit.llm.hf import HFPolicy, Sampling
from marlkit.llm.serve_http import (
    MAX_BODY,
    MAX_N,
    RETRY_AFTER,
    ChatHandler,
    ClientGone,
    InsecureBindWarning,
    RequestError,
    chat_messages,
    check_bind,
    integer_field,
    number_field,
    shown,
)


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
        super().__init__((host, port), ChatHandler)
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
            raise RequestError(f"stream must be true or false, got {shown(stream)}", param="stream")
        model = body.get("model")
        if model is None:
            model = self.model_name
        if not isinstance(model, str):
            raise RequestError(f"model must be a string, got {shown(model)}", param="model")
        if model != self.model_name:
            raise RequestError(
                f"unknown model {model!r}; this server serves {self.model_name!r}",
                status=404,
                param="model",
                kind="not_found_error",
            )
        messages = chat_messages(body.get("messages"))
        n = integer_field(body, "n", 1, 1, MAX_N)
        seed = integer_field(body, "seed", None, -(1 << 63), (1 << 64) - 1)  # what a torch.Generator takes
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
        max_tokens = integer_field(body, name, default.max_new_tokens, 1, self.max_tokens_limit)
        stop = body.get("stop")
        stops = () if stop is None else (stop,) if isinstance(stop, str) else stop
        if not isinstance(stops, (list, tuple)) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
            raise RequestError(
                f"stop must be a string or a list of up to 4 non-empty strings, got {shown(stop)}", param="stop"
            )
        temperature = number_field(body, "temperature", 1.0)
        top_p = number_field(body, "top_p", 1.0)
        try:
            return Sampling(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=tuple(stops))
        except ValueError as e:
            raise RequestError(str(e)) from None

    def authorized(self, header: str | None) -> bool:
        if self.api_key is None:
            return True
        expected = f"Bearer {self.api_key}".encode()
        return header is not None and hmac.compare_digest(header.encode(), expected)


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
