"""The HTTP side of ``marlkit.llm.serve``'s ``ChatServer``: its request handler, the limits on what a client may send,
the checks of every request field, OpenAI-shaped errors and the bind check.

``ChatHandler`` reads each request through a socket reader that knows the request's deadline (``read_timeout`` per
read, ``request_timeout`` for the whole request), refuses what the request line and headers already rule out (the
API key, the route, the framing, the declared size) before reading a byte of the body, parses the body
(``parse_body``: JSON no deeper than ``MAX_DEPTH``) and hands it to ``ChatServer.chat_completion``. A refusal is a
``RequestError``, sent in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import math
import select
import socket
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

log = logging.getLogger("marlkit.llm.serve")  # the server's logger: one name for all it logs

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


def shown(value: Any) -> str:
    """A request value as the client wrote it (JSON), shortened for an error message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def integer_field(body: dict[str, Any], name: str, default: Any, low: int, high: int) -> Any:
    """``body[name]`` checked to be an integer in [low, high] (JSON true/false are not integers); absent or null
    gives ``default``."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(f"{name} must be an integer from {low} to {high}, got {shown(value)}", param=name)
    return value


def number_field(body: dict[str, Any], name: str, default: float) -> float:
    """``body[name]`` checked to be a finite number (not true/false); absent or null gives ``default``."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise RequestError(f"{name} must be a finite number, got {shown(value)}", param=name)
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


def chat_messages(messages: Any) -> list[dict[str, str]]:
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


class ChatBackend(Protocol):
    """What ``ChatHandler`` asks of the server it runs in (``marlkit.llm.serve.ChatServer`` is one)."""

    read_timeout: float
    request_timeout: float
    max_body: int

    def authorized(self, header: str | None) -> bool: ...

    def models(self) -> dict[str, Any]: ...

    def chat_completion(self, body: Any, client_connected: Callable[[], bool] | None = None) -> dict[str, Any]: ...


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatBackend  # type: ignore[assignment]  # a socketserver.BaseServer that is also a ChatBackend
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
    """The raw side of a handler's ``rfile``: socket reads through ``ChatHandler.read_into``."""

    def __init__(self, handler: ChatHandler) -> None:
        self.handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self.handler.read_into(buffer)
