"""Token counts for the ``length`` scorer (unit: tokens) with litellm's offline tokenizers.

litellm is imported lazily through ``replay.llm`` (which makes it offline and quiet first), and
only when a tokens-length scorer actually runs; litellm bundles its tiktoken files, so nothing is
downloaded."""
from __future__ import annotations


def count_tokens(text: str, model: str = "gpt-4o") -> int:
    if not text:
        return 0
    from replaygate.replay.llm import litellm_module
    return int(litellm_module().token_counter(model=model, text=text))
