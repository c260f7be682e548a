"""What translating a /v1 chat request costs, against forwarding it as it came.

A routed `POST /v1/chat/completions` is translated four times, all pure: the client's JSON is
validated into the wire model and turned into a `ChatRequest` (in), the adapter builds and
serialises the provider's body (out), and the provider's completion is parsed into a
`ChatResponse` and written back as the client's completion (back, two steps timed together).
The fourth column is what a same-wire pass-through would do instead: parse the client's JSON,
set the model, serialise it, and the same for the reply. The gap between their sum and the
pass-through is the most that skipping translation could save a request on this machine.

    .venv/bin/python bench/chat_translation.py [--rounds 20000] [--json]

Each figure is the best of five repeats of `--rounds` calls, in µs per request, for the body
`bench/gateway.py` sends (`short`), for one with a system prompt, six turns and a tool (`tools`),
and for a 50-turn conversation (`history`): a chat client resends the whole history each turn,
so translation grows with it.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from providers.adapters.openai_quirks import OpenAIQuirks
from providers.adapters.openai_translate import build_request, parse_response
from server.v1.openai_translate import completion_body, to_chat_request
from server.v1.openai_wire import ChatCompletionRequest

SHORT = {"model": "default", "messages": [{"role": "user", "content": "Say the numbers."}], "stream": False}
TOOLS = {
    "model": "default",
    "messages": [
        {"role": "system", "content": "You are a helpful voice agent. Answer briefly."},
        *(
            {"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i}: some conversational text."}
            for i in range(6)
        ),
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Find an order by its number.",
                "parameters": {"type": "object", "properties": {"number": {"type": "string"}}},
            },
        }
    ],
    "temperature": 0.2,
    "max_tokens": 256,
}
REPLY = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "One, two, three, four, five."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }
)
HISTORY = {
    "model": "default",
    "messages": [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"Turn {i}: some conversational text that is about as long as a spoken sentence.",
        }
        for i in range(50)
    ],
}
QUIRKS = OpenAIQuirks()


def steps(body: bytes) -> dict[str, Callable[[], Any]]:
    request = to_chat_request(ChatCompletionRequest.model_validate_json(body))

    def inbound() -> Any:
        return to_chat_request(ChatCompletionRequest.model_validate_json(body))

    def outbound() -> bytes:
        return orjson.dumps(build_request(request, QUIRKS))

    def back() -> bytes:
        parsed = parse_response(orjson.loads(REPLY), provider="openai")
        return completion_body(parsed, completion_id="chatcmpl-x", model="openai/gpt-4o-mini", created=1)

    def pass_through() -> bytes:
        sent = orjson.loads(body)
        sent["model"] = "gpt-4o-mini"
        orjson.dumps(sent)
        reply = orjson.loads(REPLY)
        reply["model"] = "openai/gpt-4o-mini"
        return orjson.dumps(reply)

    return {"in": inbound, "out": outbound, "back": back, "pass-through": pass_through}


def best_us(fn: Callable[[], Any], rounds: int) -> float:
    return min(timeit.repeat(fn, number=rounds, repeat=5)) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20_000, help="calls per repeat (default 20000)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for name, body in (("short", SHORT), ("tools", TOOLS), ("history", HISTORY)):
        timed = {step: best_us(fn, args.rounds) for step, fn in steps(orjson.dumps(body)).items()}
        timed["translation"] = timed["in"] + timed["out"] + timed["back"]
        results[name] = timed
    if args.json:
        print(json.dumps({k: {s: round(v, 2) for s, v in t.items()} for k, t in results.items()}))
        return
    print(f"{'body':<8} {'in':>7} {'out':>7} {'back':>7} {'sum':>7} {'pass-through':>13}  (µs per request)")
    for name, t in results.items():
        print(
            f"{name:<8} {t['in']:7.2f} {t['out']:7.2f} {t['back']:7.2f} "
            f"{t['translation']:7.2f} {t['pass-through']:13.2f}"
        )


if __name__ == "__main__":
    main()
