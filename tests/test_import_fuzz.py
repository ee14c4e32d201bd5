"""Corrupted inputs never crash the importer: it imports or raises InputError naming the file."""
from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from replaygate.errors import InputError
from replaygate.sources.traces import import_traces

FIX = Path(__file__).parent / "fixtures" / "traces"
FILES = sorted(p for p in FIX.iterdir() if p.suffix in (".json", ".jsonl", ".pb"))


def _mutations(data: bytes, rng: random.Random):
    for _ in range(40):
        b = bytearray(data)
        kind = rng.randrange(5)
        if kind == 0:  # truncate
            yield bytes(b[: rng.randrange(len(b))])
        elif kind == 1:  # flip bytes
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            yield bytes(b)
        elif kind == 2:  # delete a slice
            i = rng.randrange(len(b))
            del b[i: i + rng.randint(1, 64)]
            yield bytes(b)
        elif kind == 3:  # gzip then truncate
            z = gzip.compress(bytes(b))
            yield z[: rng.randrange(10, len(z))]
        else:  # gzip then flip bytes in the deflate stream
            z = bytearray(gzip.compress(bytes(b)))
            for _ in range(rng.randint(1, 4)):
                z[rng.randrange(10, len(z))] = rng.randrange(256)
            yield bytes(z)


@pytest.mark.parametrize("src", FILES, ids=lambda p: p.name)
def test_corrupted_files_import_or_raise_input_error(tmp_path, src):
    rng = random.Random(src.name)
    outcomes = {"ok": 0, "error": 0}
    for i, data in enumerate(_mutations(src.read_bytes(), rng)):
        f = tmp_path / f"m{i}{src.suffix}"
        f.write_bytes(data)
        try:
            import_traces([f])
            outcomes["ok"] += 1
        except InputError as e:
            assert e.file == str(f), e
            outcomes["error"] += 1
    assert outcomes["error"] > 0  # the mutations do break things, and are reported


_KEYS = ["gen_ai.operation.name", "gen_ai.request.model", "gen_ai.input.messages", "gen_ai.output.messages",
         "gen_ai.system_instructions", "gen_ai.tool.definitions", "gen_ai.prompt", "gen_ai.completion",
         "gen_ai.prompt.0.role", "gen_ai.prompt.0.content", "gen_ai.prompt.0.tool_calls.0.arguments",
         "gen_ai.completion.0.content", "gen_ai.completion.0.tool_calls", "llm.request.functions.0.parameters",
         "llm.input_messages.0.message.contents", "llm.input_messages.0.message.role",
         "llm.output_messages.0.message.tool_calls.0.tool_call.function", "llm.invocation_parameters",
         "llm.tools.0.tool.json_schema", "input.value", "output.value", "llm.prompt_template.variables",
         "gen_ai.request.stop_sequences", "gen_ai.request.temperature", "gen_ai.usage.input_tokens",
         "gen_ai.response.finish_reasons", "gen_ai.retrieval.documents", "retrieval.documents.0.document",
         "llm.prompts.0.prompt", "llm.choices.0", "gen_ai.request.max_tokens", "llm.cost.total"]
_VALUES = [None, "", "[", "{}", "[]", "[1, 2]", 5, -1.5, True, [1, "a"], {"a": 1}, [{"role": 1}],
           [{"parts": 5}], '[{"parts": [{"type": "tool_call"}]}]', '[{"role": "user", "parts": [7]}]',
           '{"messages": 3, "tools": [1]}', '{"choices": [{"message": 1}]}', '"\\"[{}]\\""',
           [{"type": "text"}], [{"type": "tool_call_response"}], "NaN", "1e400", ["stop", 3],
           '[{"role": "assistant", "content": [{"type": "image"}], "tool_calls": [{"function": 2}]}]']


def test_random_attribute_shapes_never_crash_extraction():
    from replaygate.sources import genai
    from replaygate.sources.otlp import Event, SpanRecord
    rng = random.Random(11)
    made = 0
    for i in range(3000):
        attrs = {k: rng.choice(_VALUES) for k in rng.sample(_KEYS, rng.randint(1, 12))}
        attrs["gen_ai.request.model"] = "m"
        events = [Event(rng.choice(sorted(genai.GENAI_EVENT_NAMES)), i, {}, rng.choice(_VALUES))
                  for _ in range(rng.randint(0, 3))]
        span = SpanRecord("ab" * 16, "cd" * 8, None, "s", 3, 1, 2, attrs, events, rng.choice([0, 2]), "",
                          {}, "", "mem")
        genai.classify(span)
        try:
            genai.retrieval_documents(span)
        except ValueError:
            pass
        res = genai.extract(span, events, "chat", include_errors=True)
        if res.case is not None:
            made += 1
            res.case.to_dict()
        else:
            assert res.skip in (genai.SKIP_NO_CONTENT, genai.SKIP_ERROR, genai.SKIP_MALFORMED)
    assert made > 100
