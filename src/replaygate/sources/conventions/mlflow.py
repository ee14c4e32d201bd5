"""MLflow tracing: the request and response JSON-encoded in mlflow.spanInputs / spanOutputs."""
from __future__ import annotations

from typing import Any

from replaygate.sources.conventions.base import (AGENT, Content, EMBEDDINGS, INFERENCE, OTHER,
                                                 RETRIEVAL, TOOL)
from replaygate.sources.conventions.shapes import chat_input, chat_output
from replaygate.sources.otlp import Event

NAME = "mlflow"

# mlflow.spanType -> (category, operation)
MLFLOW_KINDS = {"llm": (INFERENCE, "chat"), "chat_model": (INFERENCE, "chat"),
                "embedding": (EMBEDDINGS, "embeddings"), "retriever": (RETRIEVAL, "retrieval"),
                "reranker": (RETRIEVAL, "reranker"), "tool": (TOOL, "execute_tool"),
                "agent": (AGENT, "invoke_agent"), "chain": (AGENT, "chain"), "parser": (OTHER, None),
                "unknown": (OTHER, None)}


def find(a: dict[str, Any], events: list[Event]) -> Content | None:
    """MLflow tracing: the request and response JSON-encoded in mlflow.spanInputs / spanOutputs."""
    if "mlflow.spanInputs" not in a:
        return None
    msgs = chat_input(a.get("mlflow.spanInputs")) or []
    out = a.get("mlflow.spanOutputs")
    return Content("mlflow", msgs, chat_output(out) if out is not None else None)
