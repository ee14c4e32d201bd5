"""Drive one real Python instrumentation against the local fake server; its OTLP goes to a receiver.

Run by ``capture.py`` inside the throwaway venv that holds the pinned instrumentation packages
(this file imports only those packages, never replaygate):

    python drive_py.py EMITTER API_BASE OTLP_ENDPOINT

EMITTER is one of ``EMITTERS`` below. The same six calls are made for every emitter (the
scenario the corpus tests expect), through the OpenAI Python SDK (the Langfuse emitter through
its ``langfuse.openai`` drop-in wrapper, LiteLLM through ``litellm.completion``):

1. chat with a system prompt and every common parameter
2. a tool call (the fake server's ``tool:NAME`` model answers with one)
3. the tool's result sent back, answered by a constant
4. a stream with usage (2 cached prompt tokens, 40 ms to the first chunk)
5. an embedding
6. an error (HTTP 400)
"""
from __future__ import annotations

import json
import os
import sys
import time

EMITTERS = ("openai-v2-events", "openai-v2-latest", "openinference", "openllmetry", "langfuse",
            "litellm", "stacked-openllmetry-openinference")

SYSTEM = "You are a terse assistant."
QUESTION = "What is the capital of France?"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
PARAMS = dict(temperature=0.2, top_p=0.9, max_tokens=50, seed=7, stop=["END"],
              presence_penalty=0.1, frequency_penalty=0.2)


def _otel(endpoint: str, emitter: str, logs: bool = False):
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    resource = Resource.create({"service.name": f"corpus-{emitter}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)
    flush = [provider.force_flush]
    if logs:  # the v1.28-v1.36 message events are log records
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

        lp = LoggerProvider(resource=resource)
        lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")))
        set_logger_provider(lp)
        try:  # instrumentations of 2025 emit through the (since removed) Events API
            from opentelemetry._events import set_event_logger_provider
            from opentelemetry.sdk._events import EventLoggerProvider
            set_event_logger_provider(EventLoggerProvider(lp))
        except ImportError:
            pass
        flush.append(lp.force_flush)
    return provider, flush


def _calls(client) -> None:
    client.chat.completions.create(
        model="echo", messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
        **PARAMS)
    first = client.chat.completions.create(
        model="tool:get_weather", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    client.chat.completions.create(
        model="const:It is sunny in Paris.", tools=TOOLS,
        messages=[{"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": call.id, "type": "function",
                       "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
                  {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21})}])
    stream = client.chat.completions.create(
        model="echo@ttft=40,cached=2", messages=[{"role": "user", "content": "Stream these five words back"}],
        stream=True, stream_options={"include_usage": True})
    for _ in stream:
        pass
    client.embeddings.create(model="text-embedding-3-small", input="hello world")
    try:
        client.chat.completions.create(model="echo@status=400",
                                       messages=[{"role": "user", "content": "This call fails"}])
    except Exception:  # the error span is what we record
        pass


def _litellm_calls(api_base: str) -> None:
    """The same calls through litellm: the first and the stream async (call type acompletion),
    the others sync (completion)."""
    import asyncio

    import litellm

    kw = dict(api_base=api_base, api_key="sk-test-not-a-real-key")
    async def chat() -> None:
        await litellm.acompletion(model="openai/echo", messages=[
            {"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}], **PARAMS, **kw)
        await asyncio.sleep(1)  # litellm logs an async call from a task on this loop
    asyncio.run(chat())
    first = litellm.completion(model="openai/tool:get_weather", tools=TOOLS,
                               messages=[{"role": "user", "content": "Weather in Paris?"}], **kw)
    call = first.choices[0].message.tool_calls[0]
    litellm.completion(model="openai/const:It is sunny in Paris.", tools=TOOLS, **kw, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21})}])
    async def stream() -> None:
        async for _ in await litellm.acompletion(
                model="openai/echo@ttft=40,cached=2", stream=True, stream_options={"include_usage": True},
                messages=[{"role": "user", "content": "Stream these five words back"}], **kw):
            pass
        await asyncio.sleep(1)
    asyncio.run(stream())
    litellm.embedding(model="openai/text-embedding-3-small", input=["hello world"], **kw)
    try:
        litellm.completion(model="openai/echo@status=400", num_retries=0,
                           messages=[{"role": "user", "content": "This call fails"}], **kw)
    except Exception:
        pass


def main() -> None:
    emitter, api_base, endpoint = sys.argv[1:4]
    if emitter not in EMITTERS:
        raise SystemExit(f"unknown emitter {emitter!r}; one of {', '.join(EMITTERS)}")
    api_key = "sk-test-not-a-real-key"
    if emitter.startswith("openai-v2"):
        if emitter == "openai-v2-latest":
            os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
            os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
        else:
            os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
        _, flush = _otel(endpoint, emitter, logs=True)
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        OpenAIInstrumentor().instrument()
    elif emitter == "openinference":
        _, flush = _otel(endpoint, emitter)
        from openinference.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument()
    elif emitter == "openllmetry":
        _, flush = _otel(endpoint, emitter)
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument()
    elif emitter == "stacked-openllmetry-openinference":
        _, flush = _otel(endpoint, emitter)
        from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInference
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetry
        OpenLLMetry().instrument()
        OpenInference().instrument()
    elif emitter == "litellm":
        # LiteLLM's own OpenTelemetry callback, configured by its environment variables
        os.environ.update(OTEL_EXPORTER="otlp_http", OTEL_ENDPOINT=f"{endpoint}/v1/traces",
                          OTEL_SERVICE_NAME=f"corpus-{emitter}",
                          LITELLM_LOCAL_MODEL_COST_MAP="True")  # no fetch from the network
        import litellm
        litellm.callbacks = ["otel"]
        _litellm_calls(api_base)
        time.sleep(2)  # the callback exports from a batch processor
        from opentelemetry import trace
        getattr(trace.get_tracer_provider(), "force_flush", lambda: None)()
        return
    if emitter == "langfuse":
        from langfuse import Langfuse
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        client = Langfuse(public_key="pk-lf-corpus", secret_key="sk-lf-corpus", base_url=api_base,
                          span_exporter=OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"),
                          flush_at=1)
        from langfuse.openai import OpenAI
        _calls(OpenAI(base_url=api_base, api_key=api_key, max_retries=0))
        client.flush()
        client.shutdown()
        return
    from openai import OpenAI
    _calls(OpenAI(base_url=api_base, api_key=api_key, max_retries=0))
    for f in flush:
        f()


if __name__ == "__main__":
    main()
