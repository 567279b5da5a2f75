"""marlkit.llm.serve end to end: a tiny model served on 127.0.0.1, OpenAIChatPolicy talking to it over real HTTP."""

import httpx
import pytest
import torch

from marlkit.llm.hf import HFPolicy
from marlkit.llm.openai_compat import APIAuthError, APIStatusError, OpenAIChatPolicy
from marlkit.llm.serve import ChatServer
from marlkit.llm.tiny import tiny_causal_lm

pytestmark = pytest.mark.llm

OBS = ["short", "a somewhat longer observation", "the third one, longest of them all by far", "x", "mid size"]


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    model, tok = tiny_causal_lm(seed=2)
    return HFPolicy(model, tok, system_prompt="Answer.", max_new_tokens=8)


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_greedy_answers_over_http_equal_local_ones(policy):
    local = HFPolicy(
        policy.model, policy.tokenizer, system_prompt="Answer.", max_new_tokens=8, temperature=0
    ).act_with_logprobs(OBS)
    with ChatServer(policy, model_name="tiny") as server:
        client = OpenAIChatPolicy(
            server.url, "tiny", system_prompt="Answer.", temperature=0, max_tokens=8, concurrency=4
        )
        replies = client.act_with_replies(OBS)  # concurrent requests, batched together by the server
    assert [r.text for r in replies] == local.texts
    assert [r.prompt_tokens for r in replies] == [len(p) for p in local.prompt_ids]
    assert [r.completion_tokens for r in replies] == [len(t) for t in local.token_ids]
    assert client.usage.prompt_tokens == sum(len(p) for p in local.prompt_ids)
    assert client.usage.completion_tokens == sum(len(t) for t in local.token_ids)
    assert [r.finish_reason for r in replies] == ["stop" if f == "stop" else "length" for f in local.finish_reasons]


def test_seeded_requests_repeat_and_n_gives_several_answers(policy):
    with ChatServer(policy, model_name="tiny") as server:
        body = {
            "model": "tiny",
            "messages": [{"role": "user", "content": "hello"}],
            "seed": 11,
            "n": 3,
            "temperature": 1.0,
            "max_tokens": 6,
        }
        first = httpx.post(server.url + "/chat/completions", json=body).json()
        again = httpx.post(server.url + "/chat/completions", json=body).json()
        models = httpx.get(server.url + "/models").json()
    texts = [c["message"]["content"] for c in first["choices"]]
    assert texts == [c["message"]["content"] for c in again["choices"]]
    assert len(texts) == 3 and len(set(texts)) > 1
    assert (
        first["object"] == "chat.completion"
        and first["usage"]["total_tokens"] == first["usage"]["prompt_tokens"] + first["usage"]["completion_tokens"]
    )
    assert models["data"][0]["id"] == "tiny"


def test_bad_requests_get_openai_style_errors(policy):
    with ChatServer(policy, model_name="tiny") as server:

        def post(body, path="/chat/completions", **kw):
            return (
                httpx.post(server.url + path, json=body, **kw)
                if body is not None
                else httpx.post(server.url + path, content=b"{not json", **kw)
            )

        ok = [{"role": "user", "content": "hi"}]
        cases = [
            (post({"model": "gpt-9", "messages": ok}), 404, "unknown model 'gpt-9'; this server serves 'tiny'"),
            (post({"messages": ok, "stream": True}), 400, "streaming is not supported"),
            (post({"messages": ok, "temperature": -1}), 400, "temperature must be >= 0"),
            (post({"messages": ok, "max_tokens": 10**6}), 400, "max_tokens must be an integer from 1 to"),
            (post({"messages": [{"role": "robot", "content": "hi"}]}), 400, "role of 'system'"),
            (post(None), 400, "not valid JSON"),
            (post({"messages": ok}, path="/completions"), 404, "no route POST /v1/completions"),
        ]
        for response, status, message in cases:
            assert response.status_code == status
            assert message in response.json()["error"]["message"]
        parts = post({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": 2})
        assert parts.status_code == 200 and parts.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_api_key_is_checked(policy, monkeypatch):
    with ChatServer(policy, model_name="tiny", api_key="s3cret") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "wrong")
        with pytest.raises(APIAuthError, match=r"OPENAI_API_KEY, which is set.*missing or wrong API key"):
            OpenAIChatPolicy(server.url, "tiny", max_retries=0).act(["hi"])
        assert httpx.get(server.url + "/models").status_code == 401
        monkeypatch.setenv("OPENAI_API_KEY", "s3cret")
        assert len(OpenAIChatPolicy(server.url, "tiny", max_tokens=3).act(["hi"])[0]) <= 3
        with pytest.raises(APIStatusError, match="unknown model 'other'"):
            OpenAIChatPolicy(server.url, "other", max_retries=0).act(["hi"])


def test_marlkit_serve_command(policy, tmp_path, capsys, monkeypatch):
    """The CLI loads the folder and serves it; its serve loop is wrapped so the test can ask one question and stop
    it (in-process: a subprocess would pay for importing transformers again)."""
    import threading
    from http.server import ThreadingHTTPServer

    from marlkit.cli import main

    assert main(["serve", str(tmp_path / "nothing-here")]) == 2
    assert "no local model folder" in capsys.readouterr().err
    policy.model.save_pretrained(tmp_path / "tiny")
    policy.tokenizer.save_pretrained(tmp_path / "tiny")
    answers = []

    def ask_once_then_stop(server, poll_interval=0.5):
        loop = threading.Thread(target=ThreadingHTTPServer.serve_forever, args=(server, 0.05))
        loop.start()
        try:
            answers.append(OpenAIChatPolicy(server.url, "tiny", temperature=0, max_tokens=4).act(["hi"]))
        finally:
            server.shutdown()
            loop.join()

    monkeypatch.setattr(ChatServer, "serve_forever", ask_once_then_stop)
    assert main(["serve", str(tmp_path / "tiny"), "--port", "0", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.startswith("serving 'tiny' at http://127.0.0.1:")
    assert answers == [HFPolicy(policy.model, policy.tokenizer, max_new_tokens=4, temperature=0).act(["hi"])]


def test_a_request_whose_client_hung_up_is_dropped_before_generation(policy):
    """Client A's generation blocks; client B queues behind it; both time out and hang up. B's job is cancelled
    (not generated later for nobody), so a slow server is not buried under retries."""
    import threading
    import time

    from marlkit.llm.openai_compat import APIConnectionError

    release, calls = threading.Event(), []
    server = ChatServer(policy, model_name="tiny")
    real_generate = server.policy.generate

    class Blocking:  # the policy as the server sees it, with a generate that waits for the test
        def __getattr__(self, name):
            return getattr(policy, name)

        def generate(self, *args, **kwargs):
            calls.append(args[0])
            release.wait(10)
            return real_generate(*args, **kwargs)

    server.policy = Blocking()
    with server:

        def ask(text):
            with pytest.raises(APIConnectionError):
                OpenAIChatPolicy(server.url, "tiny", timeout=0.3, max_retries=0, max_tokens=2).act([text])

        first = threading.Thread(target=ask, args=("first",))
        first.start()
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:  # A is being generated (blocked)
            time.sleep(0.01)
        ask("second")  # B waits in the queue, times out, hangs up
        first.join()
        while server.cancelled < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.cancelled == 1
        release.set()
        replies = OpenAIChatPolicy(server.url, "tiny", max_tokens=2).act(["third"])  # the server still serves
    assert len(replies) == 1 and len(calls) == 2  # A and the third request: B was never generated


# ----------------------------------------------------------------------------------------------------------- limits
# Every socket in these tests has a timeout, so a server that holds a client shows as a failure, never a hang.


def headers_only(server, method, path, headers):
    """Send a request line and headers but no body; return (status, headers, JSON body) of the reply."""
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.headers, json.loads(response.read())
    finally:
        conn.close()


def blocking_generation(server):
    """Make the server's generation wait for the test: returns (started, release) events."""
    import threading

    started, release = threading.Event(), threading.Event()
    real = server.policy

    class Blocking:
        def __getattr__(self, name):
            return getattr(real, name)

        def generate(self, *args, **kwargs):
            started.set()
            release.wait(10)
            return real.generate(*args, **kwargs)

    server.policy = Blocking()
    return started, release


def test_a_stalled_client_is_dropped_while_others_are_served(policy):
    import socket

    with (
        ChatServer(policy, model_name="tiny", read_timeout=0.5) as server,
        socket.create_connection(server.server_address, timeout=10) as stalled,
    ):
        stalled.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # half a header, then nothing
        assert httpx.get(server.url + "/models", timeout=10).status_code == 200
        assert stalled.recv(1024) == b""  # closed by the server (a held connection would time out here)


def test_a_client_that_trickles_its_request_is_dropped_at_the_request_deadline(policy):
    """One header byte every 20 ms never trips the 10 s read timeout, but the whole request has 0.3 s."""
    import select
    import socket
    import time

    with (
        ChatServer(policy, model_name="tiny", read_timeout=10, request_timeout=0.3) as server,
        socket.create_connection(server.server_address, timeout=10) as slow,
    ):
        slow.sendall(b"GET /v1/models HTTP/1.1\r\nX-Pad: ")
        dropped = False
        for _ in range(500):  # up to ~10 s of trickling
            try:
                if select.select([slow], [], [], 0)[0] and slow.recv(1024) == b"":
                    dropped = True
                    break
                slow.sendall(b"a")
            except OSError:  # reset by the server
                dropped = True
                break
            time.sleep(0.02)
        assert dropped
        assert httpx.get(server.url + "/models", timeout=10).status_code == 200


def test_a_full_queue_gets_503_with_retry_after(policy):
    import threading

    server = ChatServer(policy, model_name="tiny", max_queue=1)
    started, release = blocking_generation(server)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    first = []
    with server:
        try:
            asker = threading.Thread(
                target=lambda: first.append(httpx.post(server.url + "/chat/completions", json=body, timeout=30))
            )
            asker.start()
            assert started.wait(10)  # the first request holds the only place, in generation
            busy = httpx.post(server.url + "/chat/completions", json=body, timeout=10)
            assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
            assert busy.json()["error"]["type"] == "server_error"
            assert "busy: 1 requests are already waiting or being generated" in busy.json()["error"]["message"]
        finally:
            release.set()
            asker.join(30)
        assert first[0].status_code == 200
        assert httpx.post(server.url + "/chat/completions", json=body, timeout=30).status_code == 200  # place freed


def test_connections_beyond_max_connections_get_503_without_being_read(policy):
    import socket
    import time

    with ChatServer(policy, model_name="tiny", max_connections=1) as server:
        with socket.create_connection(server.server_address, timeout=10) as holder:
            holder.sendall(b"GET /v1/models HTTP/1.1\r\n")  # accepted first: holds the one handler thread
            status, headers, body = headers_only(server, "GET", "/v1/models", {})
            assert status == 503 and headers["Retry-After"] == "1"
            assert "1 connections are already being served" in body["error"]["message"]
        deadline = time.monotonic() + 10  # the holder hung up: its thread ends and frees the place
        while (status := headers_only(server, "GET", "/v1/models", {})[0]) == 503 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert status == 200


def test_deeply_nested_json_gets_400_not_a_dropped_connection(policy):
    ok = b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "x": '
    with ChatServer(policy, model_name="tiny") as server:
        for depth in (100_000, 40):  # past Python's recursion limit, and past MAX_DEPTH only
            response = httpx.post(
                server.url + "/chat/completions", content=ok + b"[" * depth + b"]" * depth + b"}", timeout=10
            )
            assert response.status_code == 400
            assert "nests JSON arrays/objects more than 32 levels deep" in response.json()["error"]["message"]
        response = httpx.post(server.url + "/chat/completions", timeout=10, content=ok.replace(b"2", b"NaN") + b"1}")
        assert response.status_code == 400 and "NaN is not a JSON number" in response.json()["error"]["message"]


def test_oversize_bodies_get_413(policy):
    with ChatServer(policy, model_name="tiny", max_body=1000) as server:
        big = {"messages": [{"role": "user", "content": "x" * 1000}]}
        response = httpx.post(server.url + "/chat/completions", json=big, timeout=10)
        assert response.status_code == 413 and "over the limit of 1000" in response.json()["error"]["message"]
        status, _, _ = headers_only(server, "POST", "/v1/chat/completions", {"Content-Length": str(10**12)})
        assert status == 413  # refused on the header: nothing of it is read
        assert (
            httpx.post(
                server.url + "/chat/completions",
                timeout=30,
                json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            ).status_code
            == 200
        )


def test_the_key_is_checked_before_the_body_is_read(policy):
    """A wrong or missing key gets 401 from the headers alone: a declared body that never comes (or would be over
    the size limit) is not waited for, and ``Expect: 100-continue`` is not answered with an invitation to send it."""
    with ChatServer(policy, model_name="tiny", api_key="s3cret", read_timeout=60) as server:
        for length in (1000, 10**12):
            for extra in ({}, {"Authorization": "Bearer wrong"}, {"Expect": "100-continue"}):
                status, _, body = headers_only(
                    server,
                    "POST",
                    "/v1/chat/completions",
                    {"Content-Type": "application/json", "Content-Length": str(length), **extra},
                )
                assert status == 401 and body["error"]["type"] == "authentication_error"
        assert (
            httpx.post(
                server.url + "/chat/completions",
                headers={"Authorization": "Bearer s3cret"},
                timeout=30,
                json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            ).status_code
            == 200
        )


def test_a_keyless_server_binds_only_loopback_unless_allowed(policy, tmp_path, capsys):
    from marlkit.cli import main
    from marlkit.llm.serve_http import InsecureBindError, InsecureBindWarning

    with pytest.raises(InsecureBindError, match=r"refusing to serve on '0\.0\.0\.0' without an API key"):
        ChatServer(policy, host="0.0.0.0")
    ChatServer(policy, host="0.0.0.0", api_key="k").close()
    with pytest.warns(InsecureBindWarning, match="serving on '0.0.0.0' with NO API KEY"):
        ChatServer(policy, host="0.0.0.0", allow_insecure_bind=True).close()
    ChatServer(policy, host="localhost").close()
    # the CLI refuses before loading anything (the folder does not even exist)
    assert main(["serve", str(tmp_path / "nothing-here"), "--host", "0.0.0.0"]) == 2
    assert "refusing to serve on '0.0.0.0'" in capsys.readouterr().err


def test_insecure_bind_flag_prints_a_warning(policy, tmp_path, capsys, monkeypatch):
    from marlkit.cli import main

    policy.model.save_pretrained(tmp_path / "tiny")
    policy.tokenizer.save_pretrained(tmp_path / "tiny")
    monkeypatch.setattr(ChatServer, "serve_forever", lambda server, poll_interval=0.5: None)
    assert main(["serve", str(tmp_path / "tiny"), "--host", "0.0.0.0", "--port", "0", "--allow-insecure-bind"]) == 0
    assert "WARNING: serving on '0.0.0.0' with NO API KEY" in capsys.readouterr().err


def test_request_fields_are_type_checked(policy):
    ok = [{"role": "user", "content": "hi"}]
    cases = [
        ({"max_tokens": 0}, "max_tokens", "max_tokens must be an integer from 1 to 2048, got 0"),
        ({"max_tokens": True}, "max_tokens", "got true"),
        ({"max_tokens": -1}, "max_tokens", "got -1"),
        ({"max_tokens": "5"}, "max_tokens", 'got "5"'),
        ({"max_completion_tokens": 0}, "max_completion_tokens", "max_completion_tokens must be an integer"),
        ({"n": True}, "n", "n must be an integer from 1 to 16, got true"),
        ({"seed": 1.5}, "seed", "seed must be an integer"),
        ({"temperature": "1"}, "temperature", 'temperature must be a finite number, got "1"'),
        ({"top_p": False}, "top_p", "top_p must be a finite number, got false"),
        ({"stop": 5}, "stop", "stop must be a string or a list of up to 4 non-empty strings, got 5"),
        ({"stop": [""]}, "stop", "non-empty strings"),
        ({"stop": False}, "stop", "got false"),
        ({"stream": "no"}, "stream", "stream must be true or false"),
        ({"model": 5}, "model", "model must be a string, got 5"),
        ({"messages": "hi"}, "messages", "messages must be a non-empty list"),
        ({"messages": []}, "messages", "messages must be a non-empty list"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages", "messages[0].content must be a string"),
    ]
    with ChatServer(policy, model_name="tiny") as server:
        for fields, param, message in cases:
            response = httpx.post(server.url + "/chat/completions", json={"messages": ok, **fields}, timeout=30)
            error = response.json()["error"]
            assert (response.status_code, error["param"], error["type"]) == (400, param, "invalid_request_error"), (
                fields
            )
            assert message in error["message"], (fields, error["message"])
        overflow = httpx.post(
            server.url + "/chat/completions",
            timeout=30,  # 1e999 parses to inf
            content=b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 1e999}',
        )
        assert overflow.status_code == 400
        assert "temperature must be a finite number, got Infinity" in overflow.json()["error"]["message"]
        fine = {"messages": ok, "max_tokens": 2, "stop": None, "temperature": None, "n": None, "stream": False}
        assert httpx.post(server.url + "/chat/completions", json=fine, timeout=30).status_code == 200
