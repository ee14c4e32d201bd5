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
            "litellm", "stacked-openllmetry-openinference", "semantic-kernel", "openlit", "openlit-1.34")

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


def _semantic_kernel_calls(api_base: str, api_key: str) -> None:
    """The same calls through Semantic Kernel's OpenAI connector (its own model diagnostics:
    spans, and the messages as Python log records). SK records no embeddings span."""
    import asyncio

    from openai import AsyncOpenAI
    from semantic_kernel.connectors.ai.function_choice_behavior import FunctionChoiceBehavior
    from semantic_kernel.connectors.ai.open_ai import (OpenAIChatCompletion,
                                                       OpenAIChatPromptExecutionSettings,
                                                       OpenAITextEmbedding)
    from semantic_kernel.contents import (ChatHistory, ChatMessageContent, FunctionCallContent,
                                          FunctionResultContent)
    from semantic_kernel.contents.utils.author_role import AuthorRole
    from semantic_kernel.functions import kernel_function
    from semantic_kernel.kernel import Kernel

    client = AsyncOpenAI(base_url=api_base, api_key=api_key, max_retries=0)

    def chat(model: str) -> OpenAIChatCompletion:
        return OpenAIChatCompletion(ai_model_id=model, async_client=client)

    class Weather:
        @kernel_function(name="get_weather", description="Current weather for a city")
        def get_weather(self, city: str) -> str:
            return json.dumps({"temp_c": 21})

    kernel = Kernel()
    kernel.add_plugin(Weather(), "weather")

    async def run() -> None:
        history = ChatHistory(system_message=SYSTEM)
        history.add_user_message(QUESTION)
        settings = OpenAIChatPromptExecutionSettings(**PARAMS)
        await chat("echo").get_chat_message_contents(history, settings)

        tools = OpenAIChatPromptExecutionSettings(
            function_choice_behavior=FunctionChoiceBehavior.Auto(auto_invoke=False))
        history = ChatHistory()
        history.add_user_message("Weather in Paris?")
        [answer] = await chat("tool:get_weather").get_chat_message_contents(history, tools, kernel=kernel)
        call = next(i for i in answer.items if isinstance(i, FunctionCallContent))
        history.add_message(answer)
        history.add_message(ChatMessageContent(role=AuthorRole.TOOL, items=[FunctionResultContent(
            id=call.id, function_name=call.function_name, plugin_name=call.plugin_name,
            result=json.dumps({"temp_c": 21}))]))
        await chat("const:It is sunny in Paris.").get_chat_message_contents(history, tools, kernel=kernel)

        history = ChatHistory()
        history.add_user_message("Stream these five words back")
        async for _ in chat("echo@ttft=40,cached=2").get_streaming_chat_message_contents(
                history, OpenAIChatPromptExecutionSettings()):
            pass
        await OpenAITextEmbedding(ai_model_id="text-embedding-3-small", async_client=client
                                  ).generate_embeddings(["hello world"])
        history = ChatHistory()
        history.add_user_message("This call fails")
        try:
            await chat("echo@status=400").get_chat_message_contents(history, OpenAIChatPromptExecutionSettings())
        except Exception:  # the error span is what we record
            pass

    asyncio.run(run())


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
    elif emitter == "semantic-kernel":
        # SK's model diagnostics: spans, and the messages as log records through Python logging
        os.environ["SEMANTICKERNEL_EXPERIMENTAL_GENAI_ENABLE_OTEL_DIAGNOSTICS"] = "true"
        os.environ["SEMANTICKERNEL_EXPERIMENTAL_GENAI_ENABLE_OTEL_DIAGNOSTICS_SENSITIVE"] = "true"
        import logging

        from opentelemetry._logs import get_logger_provider
        from opentelemetry.sdk._logs import LoggingHandler
        _, flush = _otel(endpoint, emitter, logs=True)
        handler = LoggingHandler(level=logging.INFO, logger_provider=get_logger_provider())
        handler.addFilter(logging.Filter("semantic_kernel"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        _semantic_kernel_calls(api_base, api_key)
        for f in flush:
            f()
        return
    elif emitter.startswith("openlit"):
        # OpenLit's own setup (its tracer provider, OTLP/HTTP exporter, no batching)
        # OpenLit 1.44 fails (AttributeError, an error span without content) on a response
        # without usage.prompt_tokens_details, which OpenAI always sends: ask the fake server
        # for them (cached_tokens 0) on every model
        import tempfile
        import urllib.request

        import openlit

        def fake_server(path: str, body: dict) -> None:
            urllib.request.urlopen(urllib.request.Request(
                api_base.removesuffix("/v1") + path, json.dumps(body).encode(),
                {"Content-Type": "application/json"}), timeout=10).read()

        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as prices:
            prices.write("{}")  # its default fetches a price list from GitHub
        fake_server("/_config", {"options": {"cached": 0}})
        try:
            openlit.init(otlp_endpoint=endpoint, application_name=f"corpus-{emitter}",
                         disable_batch=True, disable_metrics=True, pricing_json=prices.name)
            from openai import OpenAI
            _calls(OpenAI(base_url=api_base, api_key=api_key, max_retries=0))
        finally:
            fake_server("/_reset", {})
            os.unlink(prices.name)
        from opentelemetry import _logs, trace
        for provider in (trace.get_tracer_provider(), _logs.get_logger_provider()):
            getattr(provider, "force_flush", lambda: None)()
        return
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
