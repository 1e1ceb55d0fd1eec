"""The real OpenAI Python SDK's Responses API against the Tollgate proxy (driven by
tests/cli/clients.rs).

Environment: CLIENT_BASE_URL (the proxy's /openai/v1), CLIENT_API_KEY (the workspace token,
sent as Authorization: Bearer), CLIENT_MODEL (a platform model). Prints one JSON object on
stdout: a non-streaming `responses.create` with reasoning and a `max_output_tokens` that cuts
the reply (status incomplete), and a streamed one (`stream=True`) read event by event. Retries
are off.
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
instructions = "You are a terse coding agent. Answer in a few words. " * 4


def usage(u):
    return {
        "input_tokens": u.input_tokens,
        "cached_tokens": u.input_tokens_details.cached_tokens,
        "output_tokens": u.output_tokens,
        "reasoning_tokens": u.output_tokens_details.reasoning_tokens,
    }


out = {"sdk": openai.__version__}

created = client.responses.create(
    model=model,
    instructions=instructions,
    input=[
        {"role": "developer", "content": "Greet the user. Keep it short, and never explain yourself."},
        {"role": "user", "content": [{"type": "input_text", "text": "Say hello, please."}]},
    ],
    reasoning={"effort": "medium"},
    max_output_tokens=9,
    store=False,
)
out["create"] = {
    "model": created.model,
    "status": created.status,
    "incomplete_reason": created.incomplete_details.reason if created.incomplete_details else None,
    "text": created.output_text,
    "usage": usage(created.usage),
}

events = list(
    client.responses.create(
        model=model,
        instructions=instructions,
        input="Say hello as a stream of events.",
        stream=True,
    )
)
final = events[-1].response
out["stream"] = {
    "types": [e.type for e in events],
    "text": "".join(e.delta for e in events if e.type == "response.output_text.delta"),
    "status": final.status,
    "usage": usage(final.usage),
}

# The model list (GET /models), parsed by the SDK's own types.
out["models"] = [{"id": m.id, "object": m.object} for m in client.models.list()]

print(json.dumps(out))
