"""Token counts for the ``length`` scorer (unit: tokens) with litellm's offline tokenizers.

litellm is imported lazily, only when a tokens-length scorer actually runs, with the offline and
quiet environment set first (litellm bundles its tiktoken files, so no download happens)."""
from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=1)
def _litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import litellm
    litellm.suppress_debug_info = True
    return litellm


def count_tokens(text: str, model: str = "gpt-4o") -> int:
    if not text:
        return 0
    return int(_litellm().token_counter(model=model, text=text))
