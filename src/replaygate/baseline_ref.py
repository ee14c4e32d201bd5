"""`gate --baseline-ref REF`: the baseline is the candidate as it was at REF.

The config file is read at REF (the same path in the repository) and its candidate variant —
model, params, prompt and template — becomes the baseline, with the prompt and template files
read at REF too; the dataset, scorers and gates stay the checkout's, so both sides are scored
alike on the same cases. A config that did not exist at REF (added by the branch) lends the
checkout's candidate definition, with its files read at REF. The ref is resolved once, and the
run stores the commit SHA, so a report names exactly what it compared.
"""
from __future__ import annotations

import copy
from pathlib import Path

from .config import Config, ConfigProblems, parse_yaml, validate_data
from .errors import InputError

_PROMPT_KEYS = ("system", "template")


def _pin(value: str, sha: str, config_dir: Path, root: Path) -> str:
    """A prompt path of the config at REF as ``git:SHA:/repo-path``."""
    from .vcs import pin_spec

    if value.startswith("git:"):  # an explicit ref in the old config: keep its ref, pinned
        return pin_spec(value, config_dir)[0]
    p = Path(value)
    p = p if p.is_absolute() else config_dir / p
    try:
        rel = Path(*Path(p).resolve().relative_to(root).parts).as_posix()
    except ValueError:
        raise InputError(f"--baseline-ref: prompt file {value} is outside the repository, so it "
                         "cannot be read at a ref") from None
    return f"git:{sha}:/{rel}"


def config_with_baseline_at(cfg: Config, ref: str) -> tuple[Config, str]:
    """A copy of `cfg` whose baseline variant is its candidate as it was at `ref`, and a line
    saying where that definition came from."""
    from .vcs import config_at_ref

    try:
        text, sha, used, root = config_at_ref(cfg.path, ref)
    except ValueError as e:
        raise InputError(f"--baseline-ref {ref}: {e}", file=str(cfg.path)) from None
    rel = cfg.path.relative_to(root).as_posix()
    if text is not None:
        where = f"{rel} at {used} ({sha[:10]})"
        data, lines = parse_yaml(text, where)
        problems = validate_data(data, lines, where)
        if problems:
            raise ConfigProblems(problems)
        name = data.get("candidate", "candidate")
        spec = copy.deepcopy(data["variants"][name])
        note = f"baseline: variant {name!r} of {where}"
    else:  # the branch adds the config: the checkout's candidate, with its files at REF
        name = cfg["candidate"]
        spec = copy.deepcopy(cfg.data["variants"][name])
        note = (f"baseline: {rel} did not exist at {used} ({sha[:10]}); variant {name!r} as checked out, "
                "with its prompt files read at that commit")
    if not spec.get("model"):
        kind = next((k for k in ("recorded", "callable", "run") if spec.get(k)), "?")
        raise InputError(f"--baseline-ref replays the candidate's model and prompts as they were at {ref}; "
                         f"variant {name!r} is a {kind} variant, which has none to read at a ref",
                         file=str(cfg.path))
    prompt = dict(spec.get("prompt") or {})
    try:
        for k in _PROMPT_KEYS:
            if isinstance(prompt.get(k), str):
                prompt[k] = _pin(prompt[k], sha, cfg.base_dir, root)
    except ValueError as e:
        raise InputError(f"--baseline-ref {ref}: {e}", file=str(cfg.path)) from None
    if prompt:
        spec["prompt"] = prompt
    spec.update(git_ref=ref, git_commit=sha)
    data = copy.deepcopy(cfg.data)
    data["variants"][cfg["baseline"]] = spec
    return Config(path=cfg.path, data=data, lines=cfg.lines), note
