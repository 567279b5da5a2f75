"""OpenAIChatPolicy against small HTTP servers started in the test on 127.0.0.1: retries, timeouts, errors, rate limit.

The servers here are scripted (fail N times, hang, answer HTML) so each failure mode is exact; the end-to-end tests
against a real model served by ``marlkit.llm.serve`` are in test_serve.py. Waits are recorded by an injected
``sleep`` and a fake clock, never measured.
"""

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from marlkit.llm.openai_compat import (
    APIAuthError,
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    OpenAIChatPolicy,
    TokenBucket,
    parse_retry_after,
)

pytestmark = pytest.mark.llm


class ScriptedServer(ThreadingHTTPServer):
    """Answers POSTs by ``script(server, n, body) -> (status, headers, body bytes)``; n counts requests from 0."""

    daemon_threads = True

    def __init__(self, script):
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.script = script
        self.bodies = []
        self.auth = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # lets a hanging handler go when the test ends
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.shutdown()
        self.server_close()


class _ScriptedHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            n = len(self.server.bodies)
            self.server.bodies.append(body)
            self.server.auth.append(self.headers.get("Authorization"))
        status, headers, payload = self.server.script(self.server, n, body)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        # the client may have given up first (the deadline tests make it), which is what those tests check
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(payload)

    def log_message(self, *args):
        pass


def completion(text, prompt_tokens=5, completion_tokens=2):
    return json.dumps(
        {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        }
    ).encode()


def echo(server, n, body):
    """A chat completion whose text is the last user message, with usage 5 + len(text)."""
    text = body["messages"][-1]["content"]
    return 200, {"Content-Type": "application/json"}, completion(f"echo {text}", 5, len(text))


class Recorder:
    def __init__(self):
        self.waits = []

    def __call__(self, seconds):
        self.waits.append(seconds)


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_answers_in_order_with_concurrency_seeds_and_usage():
    barrier = threading.Barrier(3, timeout=10)

    def script(server, n, body):
        if n < 3:
            barrier.wait()  # the first three requests must be in flight together, or this times out
        return echo(server, n, body)

    observations = [f"obs {i}" for i in range(7)]
    with ScriptedServer(script) as server:
        policy = OpenAIChatPolicy(
            server.url, "m", system_prompt="sys", concurrency=3, seed=100, temperature=0.5, max_tokens=9
        )
        assert policy.act(observations) == [f"echo {o}" for o in observations]
        assert policy.act(["again"]) == ["echo again"]
    by_text = {b["messages"][-1]["content"]: b for b in server.bodies}
    assert [by_text[o]["seed"] for o in observations] == list(range(100, 107)) and by_text["again"]["seed"] == 107
    first = by_text["obs 0"]
    assert first["messages"][0] == {"role": "system", "content": "sys"}
    assert (first["model"], first["temperature"], first["max_tokens"]) == ("m", 0.5, 9)
    assert policy.usage.requests == 8 and policy.usage.retries == 0
    assert policy.usage.prompt_tokens == 5 * 8
    assert policy.usage.completion_tokens == sum(len(o) for o in observations) + len("again")
    assert server.auth == [None] * 8  # no key in the environment: no Authorization header


@pytest.mark.parametrize("status", [503, 429])
def test_retries_respect_retry_after_then_succeed(status):
    def script(server, n, body):
        if n < 2:
            return status, {"Retry-After": str(n + 2)}, b'{"error": {"message": "busy"}}'
        return echo(server, n, body)

    sleep = Recorder()
    with ScriptedServer(script) as server:
        policy = OpenAIChatPolicy(server.url, "m", max_retries=3, sleep=sleep)
        assert policy.act(["hi"]) == ["echo hi"]
    assert len(server.bodies) == 3
    assert sleep.waits == [2.0, 3.0]  # exactly what the server asked for
    assert policy.usage.retries == 2 and policy.usage.requests == 1


def test_backoff_is_exponential_with_jitter_and_gives_up_with_the_status():
    sleep = Recorder()
    with ScriptedServer(lambda s, n, b: (500, {}, b'{"error": {"message": "model crashed"}}')) as server:
        policy = OpenAIChatPolicy(server.url, "m", max_retries=4, backoff=0.25, max_backoff=1.5, sleep=sleep, seed=0)
        with pytest.raises(APIStatusError, match=r"HTTP 500 .* after 5 attempts; server said: model crashed") as e:
            policy.act(["hi"])
    assert e.value.status == 500 and len(server.bodies) == 5
    caps = [0.25, 0.5, 1.0, 1.5]  # backoff * 2**attempt, capped at max_backoff
    assert len(sleep.waits) == 4
    assert all(cap / 2 <= w <= cap for w, cap in zip(sleep.waits, caps))
    assert len({w / cap for w, cap in zip(sleep.waits, caps)}) == 4  # jittered: not the same factor every time


def test_a_hanging_server_times_out_and_is_retried():
    def hang(server, n, body):
        server.release.wait(10)
        return echo(server, n, body)

    sleep = Recorder()
    with ScriptedServer(hang) as server:
        policy = OpenAIChatPolicy(server.url, "m", timeout=0.2, max_retries=1, sleep=sleep)
        with pytest.raises(APIConnectionError, match=r"no answer from .* within 0.2 s .* after 2 attempts"):
            policy.act(["hi"])
        assert len(server.bodies) == 2 and len(sleep.waits) == 1


def test_connection_refused_is_retried_then_explained():
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleep = Recorder()
    policy = OpenAIChatPolicy(f"http://127.0.0.1:{port}/v1", "m", max_retries=2, sleep=sleep)
    with pytest.raises(APIConnectionError, match=r"could not reach .* after 3 attempts.*is the server running"):
        policy.act(["hi"])
    assert len(sleep.waits) == 2


def test_errors_say_what_was_wrong(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")

    def script(server, n, body):
        kind = body["messages"][-1]["content"]
        if kind == "auth":
            return 401, {}, b'{"error": {"message": "invalid key"}}'
        if kind == "missing":
            return 404, {}, b"Not Found"
        if kind == "html":
            return 200, {"Content-Type": "text/html"}, b"<html>hello</html>"
        if kind == "shape":
            return 200, {}, b'{"result": "x"}'
        return 400, {}, b'{"error": {"message": "max_tokens too large"}}'

    with ScriptedServer(script) as server:
        policy = OpenAIChatPolicy(server.url, "m", api_key_env="MY_KEY", max_retries=0)
        with pytest.raises(APIAuthError, match=r"refused the API key .* MY_KEY, which is set.*invalid key") as e:
            policy.act(["auth"])
        assert "sk-secret-123" not in str(e.value) and "sk-secret-123" not in repr(policy)
        with pytest.raises(APIStatusError, match=r"HTTP 404 .*usually ending in /v1"):
            policy.act(["missing"])
        with pytest.raises(APIResponseError, match=r"not JSON.*<html>hello"):
            policy.act(["html"])
        with pytest.raises(APIResponseError, match=r"not a chat completion.*choices\[0\]"):
            policy.act(["shape"])
        with pytest.raises(APIStatusError, match=r"HTTP 400 .*max_tokens too large"):
            policy.act(["other"])
    assert server.auth[0] == "Bearer sk-secret-123"
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        OpenAIChatPolicy("localhost:8000/v1", "m")


def test_token_bucket_waits_with_a_fake_clock():
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=1, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(5)] == [0.0, 0.5, 1.0, 1.5, 2.0]  # one every 1/rate seconds
    now[0] = 10.0
    assert bucket.reserve() == 0.0  # refilled, but never past the burst
    assert bucket.reserve() == 0.5
    burst = TokenBucket(rate=4.0, burst=3, clock=lambda: 0.0)
    assert [burst.reserve() for _ in range(5)] == [0.0, 0.0, 0.0, 0.25, 0.5]
    with pytest.raises(ValueError, match="rate must be > 0"):
        TokenBucket(0)


def test_the_policy_waits_what_the_limiter_says():
    sleep = Recorder()
    with ScriptedServer(echo) as server:
        policy = OpenAIChatPolicy(
            server.url, "m", requests_per_second=4, burst=2, clock=lambda: 0.0, sleep=sleep, concurrency=3
        )
        assert len(policy.act([str(i) for i in range(6)])) == 6
    assert len(server.bodies) == 6
    assert sorted(sleep.waits) == [0.25, 0.5, 0.75, 1.0]  # 2 free (burst), then one every 0.25 s


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0 and parse_retry_after("0.5") == 0.5 and parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None


# -------------------------------------------------------------------------------- server-controlled waits and bodies


def mock_policy(handler, **kwargs):
    """An OpenAIChatPolicy whose requests go to ``handler(request) -> httpx.Response`` (no network)."""
    import httpx

    return OpenAIChatPolicy("http://127.0.0.1:9/v1", "m", transport=httpx.MockTransport(handler), **kwargs)


class FakeClock:
    """A clock that only moves when the policy sleeps (or the test moves it)."""

    def __init__(self):
        self.now = 0.0
        self.waits = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.waits.append(seconds)
        self.now += seconds


def test_retry_after_is_capped_by_max_backoff():
    import httpx

    asks = iter(["86400", "Fri, 01 Jan 2100 00:00:00 GMT"])  # a day, and a date decades away

    def handler(request):
        ask = next(asks, None)
        if ask is not None:
            return httpx.Response(503, headers={"Retry-After": ask}, json={"error": {"message": "busy"}})
        return httpx.Response(200, content=completion("ok"))

    sleep = Recorder()
    policy = mock_policy(handler, max_retries=3, max_backoff=5.0, sleep=sleep)
    assert policy.act(["hi"]) == ["ok"]
    assert sleep.waits == [5.0, 5.0]
    assert policy.backoff_wait(0, 86400.0) == 5.0 and policy.backoff_wait(0, 2.0) == 2.0


def test_the_deadline_covers_retries_and_waits():
    import httpx

    from marlkit.llm.openai_compat import APIDeadlineError

    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(503, headers={"Retry-After": "2"}, json={"error": {"message": "busy"}})

    clock = FakeClock()
    policy = mock_policy(handler, max_retries=10, deadline=5.0, clock=clock, sleep=clock.sleep)
    with pytest.raises(
        APIDeadlineError,
        match=r"within the deadline of 5 s \(3 attempts\); the last attempt: HTTP 503"
        r"; server said: busy",
    ):
        policy.act(["hi"])
    assert clock.waits == [2.0, 2.0] and len(calls) == 3  # a third wait would end past the deadline: not taken
    assert policy.usage.retries == 2
    assert issubclass(APIDeadlineError, APIConnectionError)


def test_the_deadline_stops_an_answer_that_trickles_in():
    """Each piece of the body arrives before the per-read timeout, but together they take longer than the deadline."""
    import httpx

    from marlkit.llm.openai_compat import APIDeadlineError

    clock = FakeClock()
    pieces = []

    def body():
        for piece in (completion("slow")[:10], completion("slow")[10:20], completion("slow")[20:]):
            clock.now += 4.0  # four (fake) seconds per piece
            pieces.append(piece)
            yield piece

    policy = mock_policy(
        lambda request: httpx.Response(200, content=body()), deadline=10.0, clock=clock, sleep=clock.sleep
    )
    with pytest.raises(APIDeadlineError, match="the answer was still arriving"):
        policy.act(["hi"])
    assert len(pieces) == 3 and clock.waits == []


def test_the_deadline_bounds_a_stalled_server_whatever_the_read_timeout():
    from marlkit.llm.openai_compat import APIDeadlineError

    def hang(server, n, body):
        server.release.wait(10)
        return echo(server, n, body)

    sleep = Recorder()
    with ScriptedServer(hang) as server:
        policy = OpenAIChatPolicy(server.url, "m", timeout=60, deadline=0.3, max_retries=5, sleep=sleep)
        with pytest.raises(APIDeadlineError, match=r"deadline of 0.3 s \(1 attempts\); the last attempt: ReadTimeout"):
            policy.act(["hi"])
        assert len(server.bodies) == 1 and sleep.waits == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "the body is a JSON array, not an object"),
        (b'{"result": "x"}', r"choices is missing \(expected choices\[0\].message.content\)"),
        (b'{"choices": []}', "choices must be a non-empty list, got \\[\\]"),
        (b'{"choices": {"0": 1}}', "choices must be a non-empty list"),
        (b'{"choices": [5]}', r"choices\[0\] must be an object, got 5"),
        (b'{"choices": [{"message": "hi"}]}', r'choices\[0\].message must be an object, got "hi"'),
        (
            b'{"choices": [{"message": {"content": 5}}]}',
            r"choices\[0\].message.content must be a string or null, got 5",
        ),
        (b'{"choices": [{"message": {"content": "a"}, "finish_reason": 1}]}', r"choices\[0\].finish_reason must be"),
        (b'{"choices": [{"message": {"content": "a"}}], "usage": []}', r"usage must be an object or null, got \[\]"),
        (
            b'{"choices": [{"message": {"content": "a"}}], "usage": "lots"}',
            'usage must be an object or null, got "lots"',
        ),
        (
            b'{"choices": [{"message": {"content": "a"}}], "usage": {"prompt_tokens": "5"}}',
            'usage.prompt_tokens must be a non-negative integer, got "5"',
        ),
        (
            b'{"choices": [{"message": {"content": "a"}}], "usage": {"completion_tokens": true}}',
            "usage.completion_tokens must be a non-negative integer, got true",
        ),
        (b"<html>hello</html>", "not JSON.*<html>hello"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[" * 100_000, "not JSON.*nested too deeply"),
    ],
)
def test_malformed_answers_raise_the_clients_own_error(body, message):
    import httpx

    policy = mock_policy(lambda request: httpx.Response(200, content=body), max_retries=0)
    with pytest.raises(APIResponseError, match=message):
        policy.act(["hi"])
    assert policy.usage.requests == 0


def test_malformed_error_bodies_and_oversize_answers_raise_the_clients_own_error(monkeypatch):
    import httpx

    from marlkit.llm import openai_compat

    with pytest.raises(APIStatusError, match="HTTP 400"):
        mock_policy(lambda request: httpx.Response(400, content=b"[" * 100_000), max_retries=0).act(["hi"])
    with pytest.raises(APIStatusError, match=r'HTTP 400 .*server said: \{"code": 7\}'):
        mock_policy(lambda request: httpx.Response(400, json={"error": {"code": 7}}), max_retries=0).act(["hi"])
    monkeypatch.setattr(openai_compat, "MAX_RESPONSE_BYTES", 100)
    with pytest.raises(APIResponseError, match="sent more than 100 bytes"):
        mock_policy(lambda request: httpx.Response(200, content=completion("x" * 200)), max_retries=0).act(["hi"])


def test_a_key_over_plain_http_to_another_host_warns_once(monkeypatch):
    import warnings

    from marlkit.llm.openai_compat import PlaintextKeyWarning

    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    with pytest.warns(
        PlaintextKeyWarning,
        match=r"key from MY_KEY will be sent unencrypted over plain http:// to "
        r"'api.example.test'",
    ) as record:
        OpenAIChatPolicy("http://api.example.test/v1", "m", api_key_env="MY_KEY")
    assert "sk-secret-123" not in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning below fails the test
        OpenAIChatPolicy("http://api.example.test/v1", "m", api_key_env="MY_KEY")  # once per host
        for url in (
            "https://api.example.test/v1",
            "http://127.0.0.1:8000/v1",
            "http://localhost:8000/v1",
            "http://[::1]:8000/v1",
        ):
            OpenAIChatPolicy(url, "m", api_key_env="MY_KEY")
        OpenAIChatPolicy("http://keyless.example.test/v1", "m", api_key_env="UNSET_KEY_VAR")
