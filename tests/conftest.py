"""Shared pytest fixtures."""
from __future__ import annotations

import os

import pytest

# litellm must never reach the network in tests (set before anything imports it)
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fakeserver import FakeServer  # noqa: E402  (tests/ is on sys.path via rootdir conftest)


# ---- local OpenAI-compatible server (tests/fakeserver.py) ----

@pytest.fixture(scope="session")
def _fake_server_process():
    with FakeServer() as srv:
        yield srv


@pytest.fixture
def llm_server(_fake_server_process):
    """The session's fake server, with stats and config reset for this test.

    Use ``llm_server.api_base`` as litellm's api_base (key "sk-test"), ``llm_server.stats()``,
    ``llm_server.configure(answers=..., options=...)``. Model grammar: tests/fakeserver.py."""
    _fake_server_process.reset()
    return _fake_server_process
