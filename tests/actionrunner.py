"""Runs a composite action's steps, or a workflow job's, here the way the Actions runner would,
for end-to-end tests of action.yml and the example workflows: `${{ }}` expressions of the forms
they use (inputs.*, github.*, runner.*, secrets.*, steps.ID.outputs.*, steps.ID.outcome), `if:`
conditions of `always()`, `==`, `!=`, `&&`, `||`, `continue-on-error`, bash run steps with
GITHUB_OUTPUT / GITHUB_PATH / GITHUB_STEP_SUMMARY files, and `uses:` steps played by handlers the
test gives (checkout, setup-python, cache, upload-artifact, the replaygate action itself). Nothing
here stands in for replaygate: run steps execute the real `replaygate` command."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

import yaml

_EXPR = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
Handler = Callable[["StepRunner", dict, dict], "dict | tuple[int, dict]"]


class StepRunner:
    def __init__(self, steps: list[dict], ctx: dict[str, Any], env: dict[str, str], workdir: Path,
                 runner_temp: Path, uses: dict[str, Handler], replace: dict[str, Handler] | None = None,
                 job_env: dict[str, str] | None = None):
        self.steps, self.ctx = steps, ctx
        self.ctx.setdefault("steps", {})
        self.ctx.setdefault("runner", {"temp": str(runner_temp)})
        self.env, self.workdir, self.runner_temp = dict(env), workdir, runner_temp
        self.job_env = job_env or {}
        self.uses, self.replace = uses, replace or {}
        self.path_add: list[str] = []
        self.log: list[tuple[str, int, str]] = []  # (step name, exit code, output)
        self.post: list[Callable[[], None]] = []  # post-job work (actions/cache saves)
        runner_temp.mkdir(parents=True, exist_ok=True)
        self.summary = runner_temp / "step_summary.md"
        self.summary.touch()

    # -- expressions --------------------------------------------------------------------------
    def value(self, expr: str) -> Any:
        expr = expr.strip()
        if expr == "always()":
            return True
        if expr == "failure()":
            return self._failed
        m = re.fullmatch(r"'(.*)'", expr)
        if m:
            return m.group(1)
        cur: Any = self.ctx
        for part in expr.split("."):
            cur = cur.get(part, "") if isinstance(cur, dict) else ""
        return cur

    def expand(self, text: Any) -> Any:
        if not isinstance(text, str):
            return text
        return _EXPR.sub(lambda m: str(self.value(m.group(1))), text)

    def _clause(self, c: str) -> bool:
        m = re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", c.strip())
        if m:
            a, b = self.value(m.group(1)), self.value(m.group(3))
            return (a == b) == (m.group(2) == "==")
        return bool(self.value(c))

    def condition(self, cond: str | None, failed: bool) -> bool:
        if cond is None:
            return not failed
        cond = _EXPR.sub(lambda m: m.group(1), str(cond))
        if failed and "always()" not in cond and "failure()" not in cond:
            return False
        return any(all(self._clause(c) for c in alt.split("&&")) for alt in cond.split("||"))

    # -- running ------------------------------------------------------------------------------
    def run(self) -> int:
        failed = self._failed = False
        rc = 0
        for i, step in enumerate(self.steps):
            name = step.get("name") or step.get("uses") or f"step {i}"
            if not self.condition(step.get("if"), failed):
                continue
            code, outputs = 0, {}
            if name in self.replace:
                got = self.replace[name](self, step, {})
            elif "uses" in step:
                action = step["uses"].split("@")[0]
                with_ = {k: self.expand(v) for k, v in (step.get("with") or {}).items()}
                got = self.uses[action](self, step, with_)
            else:
                got = self._bash(name, step)
            code, outputs = got if isinstance(got, tuple) else (0, got)
            if step.get("id"):
                self.ctx["steps"][step["id"]] = {"outputs": outputs,
                                                 "outcome": "failure" if code else "success"}
            if code and not step.get("continue-on-error"):
                failed = self._failed = True
                rc = code
        for work in self.post:
            work()
        return rc

    def step_env(self, step: dict) -> dict[str, str]:
        env = {**self.env, **{k: str(self.expand(v)) for k, v in self.job_env.items()},
               **{k: str(self.expand(v)) for k, v in (step.get("env") or {}).items()}}
        env["PATH"] = os.pathsep.join(self.path_add + [env.get("PATH", "")])
        return env

    def _bash(self, name: str, step: dict) -> tuple[int, dict[str, str]]:
        out_file = self.runner_temp / f"output-{len(self.log)}"
        path_file = self.runner_temp / f"path-{len(self.log)}"
        out_file.write_text("")
        path_file.write_text("")
        env = {**self.step_env(step), "GITHUB_OUTPUT": str(out_file), "GITHUB_PATH": str(path_file),
               "GITHUB_STEP_SUMMARY": str(self.summary), "RUNNER_TEMP": str(self.runner_temp),
               "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(self.workdir)}
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", self.expand(step["run"])],
                           cwd=self.workdir, env=env, capture_output=True, text=True, timeout=900)
        self.log.append((name, r.returncode, r.stdout + r.stderr))
        self.path_add = [p for p in path_file.read_text().splitlines() if p] + self.path_add
        outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines() if "=" in line)
        return r.returncode, outputs

    def output(self, name: str) -> str:
        return "\n".join(out for n, _, out in self.log if n == name)

    def transcript(self) -> str:
        return "\n".join(f"--- {n} -> {c}\n{o}" for n, c, o in self.log)


def action_runner(action_dir: Path, inputs: dict[str, str], env: dict[str, str], workdir: Path,
                  runner_temp: Path, **kw) -> StepRunner:
    """The composite action in `action_dir` with these inputs (defaults from action.yml)."""
    action = yaml.safe_load((action_dir / "action.yml").read_text())
    ctx: dict[str, Any] = {"github": {"action_path": str(action_dir), "token": env.get("GITHUB_TOKEN", "")},
                           "runner": {"temp": str(runner_temp)}, "steps": {}}
    r = StepRunner(action["runs"]["steps"], ctx, env, workdir, runner_temp, **kw)
    given = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
    given.update(inputs)
    ctx["inputs"] = {k: r.expand(v) for k, v in given.items()}  # defaults may be expressions
    r.action_outputs = {k: v["value"] for k, v in action["outputs"].items()}  # type: ignore[attr-defined]
    return r


def run_action_step(action_dir: Path, runner: StepRunner, step: dict, with_: dict, **kw) -> tuple[int, dict]:
    """A `uses:` step of a workflow that names the replaygate action: run it nested, in the same
    job (same workspace, PATH additions and summary), and hand back its outputs."""
    nested = action_runner(action_dir, with_, runner.step_env(step), runner.workdir,
                           runner.runner_temp / f"action-{len(runner.log)}", **kw)
    nested.summary = runner.summary
    code = nested.run()
    runner.log.extend(nested.log)
    runner.path_add = nested.path_add + runner.path_add
    outputs = {k: nested.expand(v) for k, v in nested.action_outputs.items()}  # type: ignore[attr-defined]
    return code, outputs


def workflow_runner(workflow: Path, job: str, github: dict[str, str], env: dict[str, str], workdir: Path,
                    runner_temp: Path, inputs: dict[str, str] | None = None, **kw) -> StepRunner:
    wf = yaml.safe_load(workflow.read_text())
    j = wf["jobs"][job]
    ctx = {"github": github, "secrets": {}, "runner": {"temp": str(runner_temp)}, "steps": {},
           "inputs": inputs or {}}
    return StepRunner(j["steps"], ctx, env, workdir, runner_temp, job_env=j.get("env"), **kw)
