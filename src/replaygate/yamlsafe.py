"""YAML read safely and within bounds: ``yaml.SafeLoader`` (no Python objects) plus a limit on
what aliases expand to.

Aliases are shared, not copied, when YAML is loaded, but everything that walks the result (line
marks, schema validation, a dataset's rows) walks each alias again: eight levels of nine
aliases ("billion laughs") are 43 million nodes. The composed node graph is measured first, without
expanding anything (each node sized once), and refused when aliases make it expand beyond
``MIN_LIMIT`` nodes and ``MAX_RATIO`` times its written size, or when an alias refers to itself."""
from __future__ import annotations

from typing import Any

import yaml

from .errors import InputError

MIN_LIMIT = 100_000  # expanded nodes always allowed (a config has hundreds)
MAX_RATIO = 10  # beyond that, aliases may multiply the written nodes this much (a large golden
# file without aliases is never refused; anchors for shared settings expand a few times)


def _expanded_size(root: yaml.Node, file: str) -> int:
    limit = MIN_LIMIT
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    # iterative post-order walk: a deep document must not exhaust the Python stack
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            in_progress.discard(key)
            children = _children(node)
            total = 1
            for c in children:
                total += sizes[id(c)]
                if total > limit:
                    raise InputError(f"YAML aliases expand to more than {limit:,} nodes, "
                                     f"{MAX_RATIO} times what is written (an alias bomb?)",
                                     file=file, line=node.start_mark.line + 1)
            sizes[key] = total
            limit = max(MIN_LIMIT, MAX_RATIO * len(sizes))
            continue
        if key in sizes:
            continue
        if key in in_progress:
            raise InputError("a YAML alias refers to itself", file=file, line=node.start_mark.line + 1)
        in_progress.add(key)
        stack.append((node, True))
        for c in _children(node):
            if id(c) not in sizes:
                stack.append((c, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [x for pair in node.value for x in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def compose_and_load(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    """(node graph with line marks, loaded data). Raises ``yaml.YAMLError`` for bad syntax and
    ``InputError`` for an alias bomb, before anything is expanded."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _expanded_size(node, file)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()
