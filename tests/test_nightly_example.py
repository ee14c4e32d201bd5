"""End to end: example-configs/nightly-model-upgrade's workflow, two nights in a row, run step by
step by tests/actionrunner.py (the replaygate action nested, the real `replaygate` inside, offline
from the example's committed cache): the history survives between nights through actions/cache,
the second night runs `history --drift`, and each failing night opens, then updates, ONE issue on
a fake GitHub API."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from actionrunner import StepRunner, run_action_step, workflow_runner
from fakegithub import FakeGitHub

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example-configs" / "nightly-model-upgrade"


def night(n: int, shop: Path, tmp: Path, gh: FakeGitHub, store: Path) -> StepRunner:
    def cache(run: StepRunner, step: dict, with_: dict) -> dict:
        target, saved = run.workdir / with_["path"], store / "history"
        if saved.exists():
            shutil.copytree(saved, target, dirs_exist_ok=True)
        run.post.append(lambda: shutil.copytree(target, saved, dirs_exist_ok=True))
        return {"cache-hit": "false"}

    def install(run: StepRunner, step: dict, with_: dict) -> dict:  # .ci/package-check installs the package
        run.path_add.insert(0, str(Path(sys.executable).parent))
        return {}

    def replaygate_action(run: StepRunner, step: dict, with_: dict):
        with_ = {**with_, "args": "--offline"}  # the test replays the committed cache, no key
        return run_action_step(ROOT, run, step, with_,
                               uses={"actions/setup-python": lambda r, s, w: {},
                                     "actions/upload-artifact": lambda r, s, w: {"artifact-url": "https://a"}},
                               replace={"Install replaygate from the action's checkout": install})

    github = {"run_id": str(100 + n), "token": gh.token, "server_url": "https://github.test", "repository": gh.repo}
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp), "GITHUB_TOKEN": gh.token,
           "GITHUB_REPOSITORY": gh.repo, "GITHUB_API_URL": gh.api_url, "GITHUB_SERVER_URL": "https://github.test",
           "GITHUB_RUN_ID": str(100 + n)}
    run = workflow_runner(EXAMPLE / ".github" / "workflows" / "nightly.yml", "upgrade-check", github, env, shop,
                          tmp / f"night{n}", uses={"actions/checkout": lambda r, s, w: {}, "actions/cache": cache,
                                                   "OWNER/replaygate": replaygate_action})
    run.rc = run.run()
    return run


def test_two_failing_nights_keep_history_check_drift_and_one_issue(tmp_path):
    shop = tmp_path / "shop"
    shutil.copytree(EXAMPLE, shop)
    store = tmp_path / "actions-cache"
    with FakeGitHub() as gh:
        first = night(1, shop, tmp_path, gh, store)
        assert first.rc == 1, first.transcript()
        steps = first.ctx["steps"]
        assert steps["upgrade"]["outcome"] == "failure" and steps["upgrade"]["outputs"]["verdict"] == "fail"
        assert "first night in the history" in first.output("Has the current model drifted since last night?")
        assert len(gh.issues) == 1 and gh.issues[0]["title"].startswith("Nightly check failed")
        body = gh.issues[0]["body"]
        assert body.startswith("<!-- replaygate:nightly-upgrade -->\n## replaygate: ❌ fail")
        assert "](https://github.test/acme/shop/actions/runs/101)" in body  # the run holds the report

        shutil.rmtree(shop / "history")  # a new runner: only the actions/cache copy survives
        second = night(2, shop, tmp_path, gh, store)
        assert second.rc == 1, second.transcript()
        drift = second.output("Has the current model drifted since last night?")
        # the test replays the cache, and a drift check compares measurements only: it refuses the
        # cached nights (exit 2) and that fails the night too; the real workflow calls live (--refresh)
        assert second.ctx["steps"]["drift"]["outcome"] == "failure", drift
        assert "cache" in drift and "Traceback" not in drift
        assert len(gh.issues) == 1 and "actions/runs/102" in gh.issues[0]["body"]
        assert [(w["method"], w["path"]) for w in gh.writes()][-2:] == [
            ("PATCH", "/repos/acme/shop/issues/1"), ("POST", "/repos/acme/shop/issues/1/comments")]
    runs = json.loads(__import__("subprocess").run(
        [str(Path(sys.executable).parent / "replaygate"), "history", "-c", str(shop / "replaygate.yaml"),
         "--format", "json"], capture_output=True, text=True, check=True).stdout)
    assert sorted(r["variant"] for r in runs) == ["current", "current", "upgrade", "upgrade"]
