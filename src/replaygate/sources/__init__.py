"""Dataset sources: golden files and OTLP traces become Cases."""
from __future__ import annotations

from ..errors import InputError
from ..model import Case


def load_dataset(entries: list[dict]) -> list[Case]:
    """Cases of every config `dataset:` entry (paths already absolute), ids unique across entries."""
    cases: list[Case] = []
    origin: dict[str, str] = {}
    for entry in entries:
        if "golden" in entry:
            from .golden import load_golden

            found, label = load_golden(entry["golden"]), entry["golden"]
        elif "cases" in entry:  # the output of `replaygate import`
            from .traces import compile_where, read_cases_jsonl, sample_cases

            match = compile_where(entry.get("where"))
            found = [c for c in read_cases_jsonl(entry["cases"]) if match(c)]
            if entry.get("sample"):
                found = sample_cases(found, entry["sample"]["n"], entry["sample"].get("seed", 0))
            label = entry["cases"]
        else:
            from .parallel import load_traces

            found, label = load_traces(entry["traces"], where=entry.get("where"),
                                       sample=entry.get("sample"),
                                       refs_dir=entry.get("refs_dir"),
                                       keep_nested_duplicates=entry.get("keep_nested_duplicates", False)
                                       ), ", ".join(entry["traces"])
        if entry.get("case_id") == "input":
            found = ids_from_input(found)
        for c in found:
            if c.id in origin:
                raise InputError(f"case id {c.id!r} appears in both {origin[c.id]} and {label}",
                                 file=label)
            origin[c.id] = label
        cases.extend(found)
    return cases


def first_cases(entries: list[dict], n: int) -> list[Case] | None:
    """The first ``n`` cases of the dataset, in load_dataset's order and with its ids, read
    without building the rest; None when a source cannot be read partway (traces and ``cases``
    files are filtered, sampled and deduplicated over the whole input) or holds no more than
    ``n`` cases (then the whole load costs no more)."""
    from itertools import islice

    if not all("golden" in e for e in entries):
        return None
    from .golden import iter_golden

    out: list[Case] = []
    for entry in entries:
        found = list(islice(iter_golden(entry["golden"]), n + 1 - len(out)))
        if entry.get("case_id") == "input":  # an id depends only on the cases before it
            found = ids_from_input(found)
        out.extend(found)
        if len(out) > n:
            return out[:n]
    return None


def ids_from_input(cases: list[Case]) -> list[Case]:
    """Case ids from what was asked (messages and tools), not from the trace and span ids, so the
    same prompt recorded in two periods pairs up (`case_id: input`): this week's traces against
    last week's. The n-th repeat of the same input within one load gets the suffix ``#n``; the
    trace-based id stays in ``metadata.trace_case_id``."""
    import hashlib
    import json

    seen: dict[str, int] = {}
    for c in cases:
        key = json.dumps({"messages": [m.to_openai() for m in c.messages], "tools": c.tools},
                         sort_keys=True, default=str)
        h = "in-" + hashlib.sha256(key.encode()).hexdigest()[:16]
        n = seen.get(h, 0)
        seen[h] = n + 1
        c.metadata = {**c.metadata, "trace_case_id": c.id}
        c.id = h if n == 0 else f"{h}#{n + 1}"
    return cases
