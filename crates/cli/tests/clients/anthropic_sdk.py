"""The real Anthropic Python SDK against the Tollgate proxy (driven by tests/cli/clients.rs).

Environment: CLIENT_BASE_URL (the proxy's /anthropic), CLIENT_API_KEY (the workspace token,
sent as x-api-key), CLIENT_MODEL (a platform model). Prints one JSON object on stdout: what the
SDK returned for a non-streaming create, a streaming create (the `messages.stream` helper) and
count_tokens. Retries are off, so every request the test counts is one the SDK sent once.
"""

import json
import os

import anthropic

client = anthropic.Anthropic(
    base_url=os.environ["CLIENT_BASE_URL"],
    api_key=os.environ["CLIENT_API_KEY"],
    max_retries=0,
    timeout=60,
)
model = os.environ["CLIENT_MODEL"]

# Claude Code's caching pattern: a cached system prompt (a cache read at the stand-in) and a
# cached newest turn (a cache write), so that all four prices are charged.
SYSTEM = [
    {
        "type": "text",
        "text": "You are a terse assistant that greets people. " * 7,
        "cache_control": {"type": "ephemeral"},
    }
]
MESSAGES = [
    {"role": "user", "content": "An uncached first turn."},
    {"role": "assistant", "content": "Noted."},
    {
        "role": "user",
        "content": [{"type": "text", "text": "Say hello, please.", "cache_control": {"type": "ephemeral"}}],
    },
]


def usage(u):
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens or 0,
        "cache_read_input_tokens": u.cache_read_input_tokens or 0,
    }


def text(message):
    return "".join(block.text for block in message.content if block.type == "text")


out = {"sdk": anthropic.__version__}

created = client.messages.create(model=model, max_tokens=64, system=SYSTEM, messages=MESSAGES)
out["create"] = {
    "model": created.model,
    "stop_reason": created.stop_reason,
    "text": text(created),
    "usage": usage(created.usage),
}

with client.messages.stream(
    model=model,
    max_tokens=4,
    system="Be brief.",
    messages=[{"role": "user", "content": "Say hello in a streamed reply."}],
) as stream:
    streamed_text = "".join(stream.text_stream)
    final = stream.get_final_message()
out["stream"] = {
    "model": final.model,
    "stop_reason": final.stop_reason,
    "text": text(final),
    "text_stream": streamed_text,
    "usage": usage(final.usage),
}

counted = client.messages.count_tokens(model=model, system=SYSTEM, messages=MESSAGES)
out["count_tokens"] = {"input_tokens": counted.input_tokens}

# The model list (GET /v1/models), parsed by the SDK's own types, paginated as it pages.
out["models"] = [{"id": m.id, "type": m.type, "display_name": m.display_name} for m in client.models.list()]

print(json.dumps(out))
