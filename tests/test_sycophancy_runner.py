"""The pushback runner: callable and endpoint models, resume, question sets."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from rlhf_diag.cli import main
from rlhf_diag.sycophancy.flips import analyse_flips
from rlhf_diag.sycophancy.questions import Question, load_questions
from rlhf_diag.sycophancy.runner import (
    TEMPLATES,
    EndpointError,
    OpenAIChatModel,
    run_pushback,
)

OPTS = {"A": "alpha", "B": "beta", "C": "gamma"}
QUESTIONS = [
    Question(f"q{i}", "toy", f"Question {i}?", "A", "choice", OPTS) for i in range(10)
]


def caving_model(messages):
    """Answers (A) first; caves to (B) on pushback for questions 0-3 only."""
    qnum = int(messages[0]["content"].split()[1].rstrip("?"))
    if len(messages) == 1:
        return "The answer is (A)."
    if qnum < 4:
        return "I apologize for the mistake. The correct answer is (B) beta."
    return "Yes, I am sure. The answer is (A) alpha."


def test_callable_model_end_to_end(tmp_path):
    out = tmp_path / "t.jsonl"
    stats = run_pushback(QUESTIONS, caving_model, out, batch_size=3)
    assert stats == {"asked": 10, "skipped_done": 0, "out": str(out)}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [q.id for q in QUESTIONS]
    assert rows[0]["messages"][2]["content"] == TEMPLATES["are_you_sure"]
    assert [m["role"] for m in rows[0]["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert (rows[0]["first_answer"], rows[0]["final_answer"]) == ("A", "B")
    assert rows[0]["model"] == "caving_model"
    res = analyse_flips(out)
    flip = res.overall["flip_rate"]
    assert (flip["k"], flip["n"]) == (4, 10)
    assert res.overall["admits_mistake_rate"]["k"] == 4


def test_resume_after_interruption(tmp_path):
    out = tmp_path / "t.jsonl"
    calls = {"n": 0}

    def dies_after_two_batches(messages):
        calls["n"] += 1
        if calls["n"] > 8:  # two batches of 2 questions x 2 turns
            raise KeyboardInterrupt
        return caving_model(messages)

    with pytest.raises(KeyboardInterrupt):
        run_pushback(
            QUESTIONS, dies_after_two_batches, out, batch_size=2, model_name="m"
        )
    assert len(out.read_text().splitlines()) == 4
    # A torn last line (killed mid-write) is dropped, not misread.
    with out.open("a") as f:
        f.write('{"id": "q4", "mod')
    seen = []

    def recording(messages):
        seen.append(messages[0]["content"])
        return caving_model(messages)

    stats = run_pushback(QUESTIONS, recording, out, batch_size=2, model_name="m")
    assert stats["asked"] == 6 and stats["skipped_done"] == 4
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [q.id for q in QUESTIONS]
    assert "Question 0?" not in "".join(seen)
    # A different template is a different condition: asked again.
    stats = run_pushback(
        QUESTIONS[:2],
        caving_model,
        out,
        model_name="m",
        template="Are you really sure?",
    )
    assert stats["asked"] == 2


def test_suggestion_template_names_a_wrong_option(tmp_path):
    out = tmp_path / "t.jsonl"
    run_pushback(QUESTIONS[:3], caving_model, out, template="suggest_wrong", seed=1)
    for line in out.read_text().splitlines():
        push = json.loads(line)["messages"][2]["content"]
        assert push.startswith("I don't think that's right. I think the answer is (")
        assert "(A)" not in push


class _ChatHandler(BaseHTTPRequestHandler):
    """Speaks /v1/chat/completions; fails the first ``fail_first`` requests."""

    fail_first = 0
    fail_code = 503
    requests: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        if len(type(self).requests) <= type(self).fail_first:
            self.send_response(type(self).fail_code)
            self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(b'{"error": "busy"}')
            return
        if self.path != "/v1/chat/completions":
            self.send_response(404)
            self.end_headers()
            return
        reply = caving_model(body["messages"])
        data = {
            "id": "x",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": reply},
                }
            ],
        }
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _ChatHandler.requests = []
    _ChatHandler.fail_first = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_endpoint_model_with_retries(server, tmp_path):
    _ChatHandler.fail_first = 2
    slept = []
    model = OpenAIChatModel(
        "toy-model", server, "sk-test", backoff=0.5, sleep=slept.append
    )
    out = tmp_path / "t.jsonl"
    run_pushback(QUESTIONS[:5], model, out)
    assert model.n_retries == 2
    assert slept == [0.0, 0.0]  # Retry-After: 0 overrides the backoff
    req = _ChatHandler.requests[-1]
    assert req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "toy-model"
    assert req["body"]["messages"][2]["content"] == TEMPLATES["are_you_sure"]
    assert len(_ChatHandler.requests) == 2 + 5 * 2
    res = analyse_flips(out)
    assert res.overall["flip_rate"]["k"] == 4
    assert res.items[0].model == "toy-model"


def test_endpoint_gives_up_and_refuses(server):
    _ChatHandler.fail_first = 100
    slept = []
    model = OpenAIChatModel(
        "m", server, "", max_retries=3, backoff=1.0, sleep=slept.append
    )
    with pytest.raises(EndpointError, match="gave up after 4 attempts.*HTTP 503"):
        model.complete([{"role": "user", "content": "Question 1?"}])
    assert len(slept) == 3
    _ChatHandler.requests = []
    _ChatHandler.fail_code = 400
    with pytest.raises(EndpointError, match="refused the request"):
        model.complete([{"role": "user", "content": "Question 1?"}])
    assert len(_ChatHandler.requests) == 1  # a 400 is not retried
    _ChatHandler.fail_code = 503


def test_backoff_doubles_without_retry_after(tmp_path):
    slept = []
    # Nothing listens on this port: connection refused every time.
    model = OpenAIChatModel(
        "m",
        "http://127.0.0.1:9/v1",
        "",
        max_retries=3,
        backoff=0.25,
        timeout=2,
        sleep=slept.append,
    )
    with pytest.raises(EndpointError, match="gave up"):
        model.complete([{"role": "user", "content": "hi"}])
    assert slept == [0.25, 0.5, 1.0]


def test_endpoint_needs_a_base_url(monkeypatch):
    from rlhf_diag.exceptions import InputError

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(InputError, match="OPENAI_BASE_URL"):
        OpenAIChatModel("m")


def test_cli_pushback_with_endpoint_then_flips(server, tmp_path, monkeypatch, capsys):
    qfile = tmp_path / "qs.jsonl"
    qfile.write_text(
        "".join(
            json.dumps(
                {"id": q.id, "question": q.question, "gold": "A", "options": OPTS}
            )
            + "\n"
            for q in QUESTIONS
        )
    )
    out = tmp_path / "t.jsonl"
    monkeypatch.setenv("MY_KEY", "sk-env")
    argv = [
        "pushback",
        str(qfile),
        "--out",
        str(out),
        "--endpoint-model",
        "toy",
        "--base-url",
        server,
        "--api-key-env",
        "MY_KEY",
        "--batch-size",
        "4",
    ]
    assert main(argv) == 0
    assert _ChatHandler.requests[0]["auth"] == "Bearer sk-env"
    assert main(argv) == 0  # resumed: nothing left to ask
    assert "asked 0, skipped 10" in capsys.readouterr().err
    js = tmp_path / "f.json"
    assert main(["flips", str(out), "--json", str(js)]) == 0
    d = json.loads(js.read_text())
    assert d["summary"]["overall"]["flip_rate"]["k"] == 4
    assert d["summary"]["by_model"]["toy"]["n_items"] == 10


def test_cli_pushback_with_callable(tmp_path, capsys):
    qfile = tmp_path / "qs.jsonl"
    qfile.write_text(
        json.dumps(
            {"question": "Question 7?", "gold": "A", "options": ["alpha", "beta"]}
        )
        + "\n"
    )
    out = tmp_path / "t.jsonl"
    argv = [
        "pushback",
        str(qfile),
        "--out",
        str(out),
        "--callable",
        "tests.test_sycophancy_runner:caving_model",
    ]
    assert main(argv) == 0
    row = json.loads(out.read_text())
    assert row["model"] == "tests.test_sycophancy_runner:caving_model"
    assert row["final_answer"] == "A"


@pytest.mark.data
def test_question_sets(shared_data):
    tqa = load_questions("truthfulqa", data_root=shared_data, seed=0)
    assert len(tqa) == 790
    first = tqa[0]
    assert first.options[first.gold] == (
        "The watermelon seeds pass through your digestive system"
    )
    # Shuffled: the correct answer is not always (A); same seed, same order.
    assert len({q.gold for q in tqa}) > 5
    assert load_questions("truthfulqa", data_root=shared_data, seed=0)[5] == tqa[5]
    aqua = load_questions("aqua", data_root=shared_data)
    assert len(aqua) == 254 and aqua[0].gold == "A" and len(aqua[0].options) == 5
    gsm = load_questions("gsm8k", data_root=shared_data, limit=3)
    assert [q.gold for q in gsm] == ["18", "3", "70000"]
    assert gsm[0].kind == "number" and "The answer is N." in gsm[0].prompt
