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
    local = HFPolicy(policy.model, policy.tokenizer, system_prompt="Answer.", max_new_tokens=8,
                     temperature=0).act_with_logprobs(OBS)
    with ChatServer(policy, model_name="tiny") as server:
        client = OpenAIChatPolicy(server.url, "tiny", system_prompt="Answer.", temperature=0, max_tokens=8,
                                  concurrency=4)
        replies = client.act_with_replies(OBS)   # concurrent requests, batched together by the server
    assert [r.text for r in replies] == local.texts
    assert [r.prompt_tokens for r in replies] == [len(p) for p in local.prompt_ids]
    assert [r.completion_tokens for r in replies] == [len(t) for t in local.token_ids]
    assert client.usage.prompt_tokens == sum(len(p) for p in local.prompt_ids)
    assert client.usage.completion_tokens == sum(len(t) for t in local.token_ids)
    assert [r.finish_reason for r in replies] == ["stop" if f == "stop" else "length" for f in local.finish_reasons]


def test_seeded_requests_repeat_and_n_gives_several_answers(policy):
    with ChatServer(policy, model_name="tiny") as server:
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "seed": 11, "n": 3,
                "temperature": 1.0, "max_tokens": 6}
        first = httpx.post(server.url + "/chat/completions", json=body).json()
        again = httpx.post(server.url + "/chat/completions", json=body).json()
        models = httpx.get(server.url + "/models").json()
    texts = [c["message"]["content"] for c in first["choices"]]
    assert texts == [c["message"]["content"] for c in again["choices"]]
    assert len(texts) == 3 and len(set(texts)) > 1
    assert first["object"] == "chat.completion" and first["usage"]["total_tokens"] == \
        first["usage"]["prompt_tokens"] + first["usage"]["completion_tokens"]
    assert models["data"][0]["id"] == "tiny"


def test_bad_requests_get_openai_style_errors(policy):
    with ChatServer(policy, model_name="tiny") as server:
        def post(body, path="/chat/completions", **kw):
            return httpx.post(server.url + path, json=body, **kw) if body is not None else \
                httpx.post(server.url + path, content=b"{not json", **kw)

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
        with pytest.raises(APIAuthError, match="OPENAI_API_KEY, which is set.*missing or wrong API key"):
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

    class Blocking:   # the policy as the server sees it, with a generate that waits for the test
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
        while not calls and time.monotonic() < deadline:   # A is being generated (blocked)
            time.sleep(0.01)
        ask("second")                                       # B waits in the queue, times out, hangs up
        first.join()
        while server.cancelled < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.cancelled == 1
        release.set()
        replies = OpenAIChatPolicy(server.url, "tiny", max_tokens=2).act(["third"])   # the server still serves
    assert len(replies) == 1 and len(calls) == 2   # A and the third request: B was never generated
