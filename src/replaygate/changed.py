"""`gate --changed-only`: did anything the gate reads change since a base ref?

The gate reads the config, its variants' prompt and template files and stored runs, its dataset
files (or folders), its scorers' schema and code files, and the response cache. When none of them
differs between the merge base with the base ref and the work tree (committed, staged, unstaged or
untracked), the verdict cannot have changed and the gate is skipped. What cannot be traced to files
(a `callable` variant, a `python` scorer given as an importable module) always counts as changed:
skipping is only safe when we can tell.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .config import Config


@dataclass
class Changes:
    base: str
    merge_base: str
    changed: list[Path] = field(default_factory=list)  # watched files that changed
    untraceable: list[str] = field(default_factory=list)  # inputs we cannot map to files

    @property
    def relevant(self) -> bool:
        return bool(self.changed or self.untraceable)


def watched(cfg: Config) -> tuple[list[Path], list[str]]:
    """The files and folders the gate reads, and the inputs that are not files."""
    d = cfg.data
    paths: list[str] = [str(cfg.path)]
    untraceable: list[str] = []
    for entry in d.get("dataset") or []:
        for key in ("golden", "cases", "refs_dir"):
            if isinstance(entry.get(key), str):
                paths.append(entry[key])
        paths.extend(entry.get("traces") or [])
    for name, v in (d.get("variants") or {}).items():
        for k in ("system", "template"):
            p = (v.get("prompt") or {}).get(k)
            if isinstance(p, str) and not p.startswith("git:"):  # a pinned ref does not move
                paths.append(p)
        if v.get("run"):
            paths.append(v["run"])
        if v.get("callable"):
            untraceable.append(f"variant {name} calls {v['callable']}")
    for s in d.get("scorers") or []:
        for k in ("schema", "file"):
            if isinstance(s.get(k), str):
                paths.append(s[k])
        if s.get("type") == "python" and not s.get("file"):
            untraceable.append(f"scorer {s.get('name')} imports {s.get('function')}")
    if isinstance(d.get("cache"), str):
        paths.append(d["cache"])
    return [Path(p).resolve() for p in paths], untraceable


def relevant_changes(cfg: Config, base: str) -> Changes:
    """What changed among the gate's inputs since the merge base with `base` (ValueError when
    the ref or the repository cannot be read)."""
    from .vcs import changed_files

    files, merge_base = changed_files(base, cfg.base_dir)
    targets, untraceable = watched(cfg)
    hits = sorted({f for f in files for t in targets if f == t or t in f.parents})
    return Changes(base=base, merge_base=merge_base, changed=hits, untraceable=untraceable)
