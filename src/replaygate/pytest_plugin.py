"""pytest plugin (entry point `pytest11`): replaygate gates as test items, and a fixture.

    pytest --replaygate replaygate.yaml [--replaygate-per-case] [--replaygate-offline]

collects one item per gate of the config (and, with --replaygate-per-case, one per case), runs
`gate` once per session when the first of them runs, and fails a gate's item when the gate failed
(an inconclusive gate fails only in `noninferior` mode, as on the command line), with the gate
table and the worst regressions as the message. A case item fails when that case regressed.

In a user's own test, the `replaygate_gate` fixture runs a gate (once per config and options in a
session) and returns a `GateResult`:

    def test_prompt_change(replaygate_gate):
        result = replaygate_gate("replaygate.yaml", offline=True)
        result.assert_passed()               # or: assert result.gate("quality.pass_rate")["verdict"] == "pass"

The plugin is loaded by pytest when replaygate is installed; it does nothing unless --replaygate
is given or the fixture is used, and it imports replaygate's pipeline only then.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_RESULTS = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("replaygate", "replaygate: LLM regression gates as tests")
    group.addoption("--replaygate", action="append", default=[], metavar="CONFIG",
                    help="Collect the gates of this replaygate config as test items (repeatable).")
    group.addoption("--replaygate-per-case", action="store_true",
                    help="Also one item per case (fails when the case regressed).")
    group.addoption("--replaygate-offline", action="store_true",
                    help="Serve model calls only from the response cache (a miss fails the items).")
    group.addoption("--replaygate-baseline-ref", metavar="REF",
                    help="Baseline: the candidate as it was at this git ref (gate --baseline-ref).")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS] = {}
    configs = config.getoption("replaygate") or []
    if configs:
        # collect the configs even when they lie outside the paths pytest walks
        wanted = [str(Path(c)) for c in configs]
        config.args[:] = list(config.args) + [c for c in wanted if c not in config.args]


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    configs = {Path(c).resolve() for c in parent.config.getoption("replaygate") or []}
    if file_path.resolve() in configs:
        return ReplaygateConfig.from_parent(parent, path=file_path)
    return None


@dataclass
class GateResult:
    """One gate run: the comparison (comparison.json's dict), its verdict and exit code."""
    config: str
    doc: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # a config error or an incomplete run: no comparison
    error_code: int = 2  # the CLI's exit code for that error (2 input, 3 incomplete)

    @property
    def verdict(self) -> str:
        return "error" if self.error else str(self.doc.get("verdict"))

    @property
    def exit_code(self) -> int:
        return self.error_code if self.error else int(self.doc.get("exit_code", 2))

    @property
    def passed(self) -> bool:
        return not self.error and self.exit_code == 0

    def gate(self, metric: str) -> dict:
        """The first gate on `metric` (KeyError when the config has none)."""
        for g in self.doc.get("gates") or []:
            if g.get("metric") == metric:
                return g
        raise KeyError(f"no gate on {metric!r} in {self.config}")

    def report(self, fmt: str = "table") -> str:
        from .report import render

        return self.error or render(self.doc, fmt)

    def assert_passed(self) -> None:
        if not self.passed:
            raise AssertionError(failure_message(self))


def run_gate(config: str | Path, *, offline: bool = False, baseline_ref: str | None = None,
             seed: int | None = None) -> GateResult:
    """`replaygate gate` as a function: never raises for a config error or an incomplete run (the
    result carries the message and the exit code the CLI would give)."""
    from .config import load_config
    from .errors import ReplaygateError
    from .pipeline import RunSettings, gate

    result = GateResult(config=str(config))
    try:
        cfg = load_config(config)
        if baseline_ref:
            from .baseline_ref import config_with_baseline_at

            cfg, _ = config_with_baseline_at(cfg, baseline_ref)
        doc, _, _ = gate(cfg, RunSettings(cache_mode="offline" if offline else "rw", seed=seed))
        result.doc = doc
    except ReplaygateError as e:
        result.error = f"replaygate: {e}"
        result.error_code = e.exit_code
    return result


def _gate_table(doc: dict) -> str:
    from tabulate import tabulate

    from .report import fmt
    from .report.terminal import verdict_line

    rows = fmt.gate_rows(doc)
    lines = [tabulate(rows, headers=fmt.GATE_HEADERS, disable_numparse=True)] if rows else []
    why = [f"  {g['metric']}: {g['reason']}" for g in doc.get("gates") or [] if g.get("reason")]
    if why:
        lines += ["Why:", *why]
    lines.append(verdict_line(doc))
    return "\n".join(lines)


def _regressions(doc: dict, limit: int = 5, case: str | None = None) -> list[str]:
    out = []
    regs = [r for r in doc.get("regressions") or [] if case is None or r.get("case") == case]
    for r in regs[:limit]:
        why = "; ".join(f"{f.get('scorer') or 'error'}: {f.get('reason')}" for f in r.get("failed") or [])
        out.append(f"  {r.get('case')}: {why or r.get('metric', '')}")
        for side in ("baseline", "candidate"):
            text = r.get(f"{side}_output")
            if isinstance(text, str):
                out.append(f"      {side}: {text[:200]}")
    if case is None and len(regs) > limit:
        out.append(f"  ... and {len(regs) - limit} more")
    return out


def failure_message(result: GateResult, gate_index: int | None = None) -> str:
    if result.error:
        return result.error
    doc = result.doc
    head = []
    if gate_index is not None:
        g = doc["gates"][gate_index]
        head.append(f"gate {g.get('metric')} {g.get('rule', '')}: {g.get('verdict')}"
                    + (f" — {g['reason']}" if g.get("reason") else ""))
    regs = _regressions(doc)
    return "\n".join(head + [_gate_table(doc)] + (["Worst regressions:", *regs] if regs else []))


def _session_result(config: pytest.Config, path: Path) -> GateResult:
    results = config.stash[_RESULTS]
    key = (str(path.resolve()), config.getoption("replaygate_offline"), config.getoption("replaygate_baseline_ref"))
    if key not in results:
        results[key] = run_gate(path, offline=config.getoption("replaygate_offline"),
                                baseline_ref=config.getoption("replaygate_baseline_ref"))
    return results[key]


class ReplaygateConfig(pytest.File):
    """A replaygate config as a test file: its gates (and cases) are the items."""

    def collect(self):
        from .config import load_config
        from .errors import ReplaygateError

        try:
            cfg = load_config(self.path)
        except ReplaygateError as e:
            yield GateItem.from_parent(self, name="config", index=None, error=f"replaygate: {e}")
            return
        gates = cfg["gates"]
        if not gates:
            yield GateItem.from_parent(self, name="verdict", index=None)
        for i, g in enumerate(gates):
            rule = next((f"{k} {g[k]}" for k in ("max_decrease", "max_increase", "min", "max") if k in g), "")
            yield GateItem.from_parent(self, name=f"gate[{g['metric']} {rule}]".strip(), index=i)
        if self.config.getoption("replaygate_per_case"):
            from .pipeline import load_cases

            for case in load_cases(cfg):
                yield CaseItem.from_parent(self, name=f"case[{case.id}]", case_id=case.id)


class ReplaygateFailure(Exception):
    pass


class _Item(pytest.Item):
    def result(self) -> GateResult:
        return _session_result(self.config, self.path)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ReplaygateFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"replaygate {self.name}"


class GateItem(_Item):
    def __init__(self, *, index: int | None, error: str | None = None, **kw):
        super().__init__(**kw)
        self.index, self.error = index, error

    def runtest(self) -> None:
        if self.error:
            raise ReplaygateFailure(self.error)
        result = self.result()
        if result.error:
            raise ReplaygateFailure(result.error)
        if self.index is None:
            if result.exit_code != 0:
                raise ReplaygateFailure(failure_message(result))
            return
        g = result.doc["gates"][self.index]
        if not g.get("passed", g.get("verdict") == "pass"):
            raise ReplaygateFailure(failure_message(result, self.index))


class CaseItem(_Item):
    def __init__(self, *, case_id: str, **kw):
        super().__init__(**kw)
        self.case_id = case_id

    def runtest(self) -> None:
        result = self.result()
        if result.error:
            raise ReplaygateFailure(result.error)
        doc = result.doc
        if self.case_id in (doc.get("only_in_baseline") or []):
            raise ReplaygateFailure(f"case {self.case_id}: no candidate result")
        lines = _regressions(doc, case=self.case_id)
        if lines:
            raise ReplaygateFailure(f"case {self.case_id} regressed:\n" + "\n".join(lines))


@pytest.fixture(scope="session")
def replaygate_gate(request: pytest.FixtureRequest):
    """Run a replaygate gate from a test: ``replaygate_gate(config, offline=False,
    baseline_ref=None, seed=None) -> GateResult`` (each config and options runs once a session)."""
    cache: dict[tuple, GateResult] = {}

    def run(config: str | Path = "replaygate.yaml", *, offline: bool = False,
            baseline_ref: str | None = None, seed: int | None = None) -> GateResult:
        key = (str(Path(config).resolve()), offline, baseline_ref, seed)
        if key not in cache:
            cache[key] = run_gate(config, offline=offline, baseline_ref=baseline_ref, seed=seed)
        return cache[key]

    return run
