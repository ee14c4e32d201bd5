"""End to end: a new repository copies example-configs/pr-gate/, a pull request switches the model,
and the repository's action.yml (run step by step by tests/actionrunner.py, the real `replaygate`
inside) gates it offline from the committed cache, writes the job summary and annotations, uploads
the report, and keeps ONE pull-request comment up to date on a fake GitHub API."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml

from actionrunner import StepRunner, action_runner
from fakegithub import FakeGitHub
from gitrepo import as_ci_clone, commit_all, git, init_repo

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example-configs" / "pr-gate"
ARTIFACT_URL = "https://github.test/acme/shop/actions/runs/4242/artifacts/99"


def workflow_inputs(base_ref: str) -> dict[str, str]:
    """The `with:` of the replaygate step in the example workflow, as the runner would expand it."""
    wf = yaml.safe_load((EXAMPLE / ".github" / "workflows" / "replaygate.yml").read_text())
    step = next(s for s in wf["jobs"]["gate"]["steps"] if s.get("uses", "").endswith("/replaygate@main"))
    return {k: str(v).replace("${{ github.base_ref }}", base_ref) for k, v in step["with"].items()}


def run_action(clone: Path, tmp: Path, gh: FakeGitHub, uploads: list) -> StepRunner:
    tmp.mkdir(parents=True, exist_ok=True)
    event = tmp / "event.json"
    event.write_text(json.dumps({"number": 3, "pull_request": {
        "number": 3, "base": {"ref": "main"}, "head": {"repo": {"full_name": gh.repo}}}}))
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp),
           "GITHUB_TOKEN": gh.token, "GITHUB_REPOSITORY": gh.repo, "GITHUB_EVENT_PATH": str(event),
           "GITHUB_API_URL": gh.api_url, "GITHUB_SERVER_URL": "https://github.test", "GITHUB_RUN_ID": "4242"}

    def upload(run: StepRunner, step: dict, with_: dict) -> dict:
        folder = Path(with_["path"])
        uploads.append(sorted(p.name for p in folder.iterdir()))
        return {"artifact-url": ARTIFACT_URL, "artifact-id": "99"}

    def install(run: StepRunner, step: dict, with_: dict) -> dict:  # .ci/package-check installs the package itself
        run.path_add.insert(0, str(Path(sys.executable).parent))
        return {}

    run = action_runner(ROOT, workflow_inputs("main"), env, clone, tmp / "runner",
                        uses={"actions/setup-python": lambda r, s, w: {}, "actions/upload-artifact": upload},
                        replace={"Install replaygate from the action's checkout": install})
    run.rc = run.run()
    return run


def test_copied_pr_gate_example_keeps_one_updated_comment(tmp_path):
    origin = init_repo(tmp_path / "shop")
    shutil.copytree(EXAMPLE, origin, dirs_exist_ok=True)
    commit_all(origin, "add the replaygate PR gate")
    git(origin, "checkout", "-q", "-b", "cheaper-model")
    cfg = origin / "replaygate.yaml"
    text = cfg.read_text()
    cand = text.index("  candidate:")
    cfg.write_text(text[:cand] + text[cand:].replace("openai/gpt-4o-mini", "openai/gpt-4.1-nano", 1))
    commit_all(origin, "switch to the cheaper model")

    with FakeGitHub(token="ghs_pr") as gh:
        uploads: list = []
        run = run_action(as_ci_clone(origin, tmp_path / "ci1", "cheaper-model"), tmp_path / "t1", gh, uploads)
        gate_log = run.output("Gate")
        assert run.rc == 1, run.transcript()
        out = run.ctx["steps"]["gate"]["outputs"]
        assert out["verdict"] == "fail" and out["exit-code"] == "1" and out["report-path"].endswith("report.html")
        assert "variant 'candidate' of replaygate.yaml at origin/main" in gate_log
        gate_line = next(i for i, ln in enumerate(cfg.read_text().splitlines(), 1) if "quality.pass_rate" in ln)
        assert f"::error file=replaygate.yaml,line={gate_line},title=replaygate%3A regression::" \
               "gate quality.pass_rate max_decrease 0.02: fail" in gate_log
        assert "## replaygate: ❌ fail" in run.summary.read_text()
        assert uploads == [["baseline.json", "candidate.json", "comparison.json", "report.html"]]
        assert [(w["method"], w["path"]) for w in gh.writes()] == [("POST", "/repos/acme/shop/issues/3/comments")]
        (first,) = gh.comments[3]
        assert "## replaygate: ❌ fail" in first["body"] and f"]({ARTIFACT_URL})" in first["body"]
        base = json.loads(Path(out["comparison"]).with_name("baseline.json").read_text())
        assert base["environment"]["git_commit"] == git(origin, "rev-parse", "main")
        assert base["variant"]["model"] == "openai/gpt-4o-mini"

        # a second push loosens the gate: the same comment is edited to the new verdict
        cfg.write_text(cfg.read_text().replace("max_decrease: 0.02", "max_decrease: 0.5"))
        commit_all(origin, "accept a larger drop")
        run = run_action(as_ci_clone(origin, tmp_path / "ci2", "cheaper-model"), tmp_path / "t2", gh, uploads)
        assert run.rc == 0, run.transcript()
        assert [w["method"] for w in gh.writes()] == ["POST", "PATCH"]
        assert len(gh.comments[3]) == 1 and gh.comments[3][0]["id"] == first["id"]
        assert "❌ fail" not in gh.comments[3][0]["body"] and "max\\_decrease 0\\.5" in gh.comments[3][0]["body"]
