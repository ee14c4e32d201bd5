"""End to end: example-configs/drift's weekly workflow for two weeks, run step by step by
tests/actionrunner.py with the real `replaygate` (no model calls at all): the week of 2026-W48 is
recorded, the week of 2026-W49 — whose canary answers the provider silently degraded — is
compared with it through `history --drift` (cases paired by their input across weeks), fails, and
opens an issue on a fake GitHub API. Also: `case_id: input` pairs the same prompt across files."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from actionrunner import StepRunner, workflow_runner
from fakegithub import FakeGitHub
from replaygate.config import load_config
from replaygate.pipeline import load_cases

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example-configs" / "drift"


def week(name: str, shop: Path, tmp: Path, gh: FakeGitHub, store: Path) -> StepRunner:
    def cache(run: StepRunner, step: dict, with_: dict) -> dict:
        target, saved = run.workdir / with_["path"], store / "history"
        if saved.exists():
            shutil.copytree(saved, target, dirs_exist_ok=True)
        run.post.append(lambda: shutil.copytree(target, saved, dirs_exist_ok=True))
        return {}

    def install(run: StepRunner, step: dict, with_: dict) -> dict:  # .ci/package-check installs the package
        run.path_add.insert(0, str(Path(sys.executable).parent))
        return {}

    github = {"run_id": name, "token": gh.token, "server_url": "https://github.test", "repository": gh.repo}
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp), "GITHUB_REPOSITORY": gh.repo,
           "GITHUB_API_URL": gh.api_url, "GITHUB_SERVER_URL": "https://github.test"}
    run = workflow_runner(EXAMPLE / ".github" / "workflows" / "drift.yml", "drift", github, env, shop, tmp / name,
                          inputs={"week": name},
                          uses={"actions/checkout": lambda r, s, w: {}, "actions/setup-python": lambda r, s, w: {},
                                "actions/cache": cache},
                          replace={"Install replaygate": install})
    run.rc = run.run()
    return run


def test_weekly_drift_workflow_flags_the_degraded_week(tmp_path):
    shop = tmp_path / "shop"
    shutil.copytree(EXAMPLE, shop, ignore=shutil.ignore_patterns("*.py"))
    store = tmp_path / "actions-cache"
    with FakeGitHub() as gh:
        first = week("2026-W48", shop, tmp_path, gh, store)
        assert first.rc == 0, first.transcript()
        assert "first week in the history" in first.output("This week against last week")
        shutil.rmtree(shop / "history")  # a new runner next week: only the actions/cache copy survives
        second = week("2026-W49", shop, tmp_path, gh, store)
        assert second.rc == 1, second.transcript()
        log = second.output("This week against last week")
        assert "Compared 40 paired cases (0 only in baseline, 0 only in candidate)" in log, log
        assert "quality.pass_rate max_decrease 0.02" in log and "FAIL" in log
        assert "latency.p95" in log
        assert len(gh.issues) == 1 and gh.issues[0]["title"] == "Production answers drifted this week"
        assert gh.issues[0]["body"].startswith("<!-- replaygate:weekly-drift -->\n## replaygate: ❌ fail")


def test_case_id_input_pairs_the_same_prompt_across_weeks(tmp_path):
    ids = {}
    for w in ("2026-W48", "2026-W49"):
        cfg = tmp_path / w / "replaygate.yaml"
        (cfg.parent / "traces").mkdir(parents=True)
        shutil.copy(EXAMPLE / "traces" / f"{w}.otlp.jsonl", cfg.parent / "traces" / "this-week.otlp.jsonl")
        shutil.copy(EXAMPLE / "replaygate.yaml", cfg)
        cases = load_cases(load_config(cfg))
        ids[w] = {c.id: c.metadata["trace_case_id"] for c in cases}
        assert len(cases) == 40 and all(i.startswith("in-") for i in ids[w])
    assert set(ids["2026-W48"]) == set(ids["2026-W49"])  # same questions, same ids
    assert not set(ids["2026-W48"].values()) & set(ids["2026-W49"].values())  # different traces
