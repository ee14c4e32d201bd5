"""Which path a chat request takes: litellm, or the direct HTTP client (openai_http.py).

Light on purpose (no httpx, no litellm): config validation and ``llm.chat`` use it on every call.

- ``transport: litellm``: always litellm.
- ``transport: direct``: the direct client; needs an ``api_base`` (validated with the config). The
  model name is sent as written, less a leading prefix of ``FORCED_PREFIXES``
  (``openai/meta-llama/Llama-3`` sends ``meta-llama/Llama-3``, as litellm does).
- ``transport: auto`` (default): direct only for an ``openai/...`` model with an ``api_base``,
  whose name litellm does not rewrite (its o-series and GPT-5 rules reject or rename parameters)
  and whose params hold no keyword litellm consumes itself. litellm sends such a request to the
  api_base unchanged; every other provider keeps litellm's translation.
"""
from __future__ import annotations

TRANSPORTS = ("auto", "litellm", "direct")
# provider prefixes of litellm that send a plain OpenAI chat completion to the api_base
# (``openai/``): the rest of the name is the model the server sees, as litellm sends it.
AUTO_PREFIXES = ("openai/",)
# stripped with ``transport: direct`` (the user vouches for the endpoint): litellm's hosted_vllm/
# lm_studio/llamafile providers rewrite tools and content for their server, so auto leaves them
FORCED_PREFIXES = ("openai/", "hosted_vllm/", "lm_studio/", "llamafile/", "custom_openai/")
# keyword arguments litellm consumes itself rather than sending: a request with one stays on litellm
LITELLM_ONLY_PARAMS = frozenset({
    "api_version", "custom_llm_provider", "drop_params", "additional_drop_params",
    "allowed_openai_params", "num_retries", "fallbacks", "metadata", "mock_response", "caching",
    "base_model", "input_cost_per_token", "output_cost_per_token", "thinking", "api_key",
    "litellm_logging_obj", "no-log", "context_window_fallback_dict", "model_list",
    "max_retries", "timeout", "stream", "stream_options"})


def _reasoning_name(name: str) -> bool:
    """litellm's o-series / GPT-5 rules (o1, o3-mini, gpt-5-nano, ...) reject or rename params."""
    base = name.rsplit("/", 1)[-1]
    return (len(base) > 1 and base[0] == "o" and base[1].isdigit()) or "gpt-5" in base


def transport_for(request: dict) -> str:
    """``"direct"`` or ``"litellm"`` for a request (``transport``: auto | litellm | direct)."""
    chosen = request.get("transport") or "auto"
    if chosen == "litellm":
        return "litellm"
    if chosen == "direct":
        return "direct"
    model = request.get("model") or ""
    if not request.get("api_base") or not model.startswith(AUTO_PREFIXES):
        return "litellm"
    if _reasoning_name(model.split("/", 1)[1]):
        return "litellm"
    if any(k in LITELLM_ONLY_PARAMS for k in (request.get("params") or {})):
        return "litellm"
    return "direct"


def transport_problem(spec: dict) -> str | None:
    """Why a variant's or judge's ``transport: direct`` cannot work, else None."""
    if spec.get("transport") != "direct" or not isinstance(spec.get("model"), str):
        return None
    if not spec.get("api_base"):
        return "transport: direct needs an api_base (the OpenAI-compatible server to send to)"
    return None


def wire_model(model: str) -> str:
    """The model name the server sees: litellm's provider prefix removed."""
    return model.split("/", 1)[1] if model.startswith(FORCED_PREFIXES) else model
