"""The real OpenAI Python SDK against the Tollgate proxy (driven by tests/cli/clients.rs).

Environment: CLIENT_BASE_URL (the proxy's /openai/v1), CLIENT_API_KEY (the workspace token,
sent as Authorization: Bearer), CLIENT_MODEL (a platform model). Prints one JSON object on
stdout: a non-streaming completion, a stream without `stream_options` (the proxy asks the
upstream for usage and must hide the chunk it added) and a stream with `include_usage` (the
client asked, so it sees the usage chunk). Retries are off.
"""

import json
import os

import openai

client = openai.OpenAI(
    base_url=os.environ["CLIENT_BASE_URL"],
    api_key=os.environ["CLIENT_API_KEY"],
    max_retries=0,
    timeout=60,
)
model = os.environ["CLIENT_MODEL"]


def usage(u):
    if u is None:
        return None
    cached = u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else 0
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "cached_tokens": cached or 0,
    }


def streamed(**extra):
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": "You stream your answers."},
                {"role": "user", "content": "Say hello as a stream of chunks."},
            ],
            stream=True,
            **extra,
        )
    )
    with_usage = [c for c in chunks if c.usage is not None]
    return {
        "chunks": len(chunks),
        "models": sorted({c.model for c in chunks}),
        "text": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
        "finish_reasons": [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason],
        "empty_choice_chunks": sum(1 for c in chunks if not c.choices),
        "usage_chunks": [usage(c.usage) for c in with_usage],
    }


out = {"sdk": openai.__version__}

completion = client.chat.completions.create(
    model=model,
    messages=[
        {"role": "system", "content": "You are a terse assistant that greets people."},
        {"role": "user", "content": "Say hello, please, in at most a few words."},
    ],
    max_completion_tokens=7,
)
out["create"] = {
    "model": completion.model,
    "finish_reason": completion.choices[0].finish_reason,
    "text": completion.choices[0].message.content,
    "usage": usage(completion.usage),
}
out["stream_plain"] = streamed()
out["stream_include_usage"] = streamed(stream_options={"include_usage": True}, max_tokens=64)

print(json.dumps(out))
