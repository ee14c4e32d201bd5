"""Runs a composite action's steps here the way the Actions runner would, for end-to-end tests of
action.yml: `${{ }}` expressions of the forms action.yml uses (inputs.*, github.*, runner.*,
steps.ID.outputs.*), `if:` conditions made of `always()`, `==`, `!=` and `&&`, bash run steps with
GITHUB_OUTPUT / GITHUB_PATH / GITHUB_STEP_SUMMARY files, and `uses:` steps played by handlers
the test gives (setup-python, upload-artifact). Nothing here is a mock of replaygate: the run steps
execute the real `replaygate` command."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

import yaml

_EXPR = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


class ActionRun:
    def __init__(self, action_dir: Path, inputs: dict[str, str], env: dict[str, str], workdir: Path,
                 runner_temp: Path, uses: dict[str, Callable[["ActionRun", dict], dict]],
                 replace: dict[str, Callable[["ActionRun", dict], dict]] | None = None):
        self.action = yaml.safe_load((action_dir / "action.yml").read_text())
        self.ctx: dict[str, Any] = {
            "inputs": {k: str(v.get("default", "")) for k, v in self.action["inputs"].items()},
            "github": {"action_path": str(action_dir), "token": env.get("GITHUB_TOKEN", "")},
            "runner": {"temp": str(runner_temp)},
            "steps": {},
        }
        self.ctx["inputs"].update(inputs)
        # defaults that are expressions (github.token) are evaluated like any other
        self.ctx["inputs"] = {k: self.expand(v) for k, v in self.ctx["inputs"].items()}
        self.env, self.workdir, self.runner_temp = dict(env), workdir, runner_temp
        self.uses, self.replace = uses, replace or {}
        self.path_add: list[str] = []
        self.log: list[tuple[str, int, str]] = []  # (step name, exit code, output)
        runner_temp.mkdir(parents=True, exist_ok=True)
        self.summary = runner_temp / "step_summary.md"
        self.summary.touch()

    def value(self, expr: str) -> Any:
        expr = expr.strip()
        if expr == "always()":
            return True
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

    def condition(self, cond: str | None, failed: bool) -> bool:
        if cond is None:
            return not failed
        cond = _EXPR.sub(lambda m: m.group(1), cond)
        clauses = [c.strip() for c in cond.split("&&")]
        if "always()" not in clauses and failed:
            return False
        for c in clauses:
            m = re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", c)
            if m:
                a, op, b = self.value(m.group(1)), m.group(2), self.value(m.group(3))
                if (a == b) != (op == "=="):
                    return False
            elif not self.value(c):
                return False
        return True

    def run(self) -> int:
        failed = False
        rc = 0
        for i, step in enumerate(self.action["runs"]["steps"]):
            name = step.get("name", f"step {i}")
            if not self.condition(step.get("if"), failed):
                continue
            outputs: dict[str, str] = {}
            if name in self.replace:
                outputs = self.replace[name](self, step)
            elif "uses" in step:
                action = step["uses"].split("@")[0]
                outputs = self.uses[action](self, {k: self.expand(v) for k, v in (step.get("with") or {}).items()})
            else:
                code, outputs = self._bash(name, step)
                if code:
                    failed, rc = True, code
            if step.get("id"):
                self.ctx["steps"][step["id"]] = {"outputs": outputs}
        return rc

    def _bash(self, name: str, step: dict) -> tuple[int, dict[str, str]]:
        out_file = self.runner_temp / f"output-{len(self.log)}"
        path_file = self.runner_temp / f"path-{len(self.log)}"
        out_file.write_text("")
        path_file.write_text("")
        env = {**self.env, **{k: str(self.expand(v)) for k, v in (step.get("env") or {}).items()},
               "GITHUB_OUTPUT": str(out_file), "GITHUB_PATH": str(path_file),
               "GITHUB_STEP_SUMMARY": str(self.summary), "RUNNER_TEMP": str(self.runner_temp),
               "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(self.workdir)}
        env["PATH"] = os.pathsep.join(self.path_add + [env.get("PATH", "")])
        r = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                           cwd=self.workdir, env=env, capture_output=True, text=True, timeout=600)
        self.log.append((name, r.returncode, r.stdout + r.stderr))
        self.path_add = [p for p in path_file.read_text().splitlines() if p] + self.path_add
        outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines() if "=" in line)
        return r.returncode, outputs

    def output(self, name: str) -> str:
        return "\n".join(out for n, _, out in self.log if n == name)
