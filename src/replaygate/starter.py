"""The commented starter config written by `replaygate init`, and its example golden file."""

STARTER_CONFIG = """\
# replaygate configuration. Reference: https://github.com/replaygate/replaygate#configuration
# Check it with:  replaygate validate -c replaygate.yaml
version: 1

# Where the cases come from. Relative paths are resolved against this file's folder.
dataset:
  - golden: golden.jsonl            # JSONL, YAML list or CSV: id, input|messages, expected, context, vars
  # - traces: traces/app.otlp.jsonl   # OpenTelemetry GenAI traces (.json, .jsonl, .pb, .gz)
  #   where: {operation: chat, model: gpt-4o-mini}
  #   sample: {n: 300, seed: 7}

# How an answer is produced for each case. `gate` compares `baseline` with `candidate`.
variants:
  baseline:
    model: openai/gpt-4o-mini       # any litellm model string
    api_key_env: OPENAI_API_KEY     # the NAME of the variable holding the key, never the key
    params: {temperature: 0}
  candidate:
    model: openai/gpt-4.1-mini
    api_key_env: OPENAI_API_KEY
    params: {temperature: 0}
    # prompt: {system: prompts/system.md}   # or git:origin/main:prompts/system.md
    # price: {input: 0.40, output: 1.60}    # USD per million tokens, for models litellm does not know

repeats: 1          # samples per case; >1 measures the model's own noise
concurrency: 16     # calls in flight

# How each answer is scored. `expected` of the case is the reference unless `value` is given.
scorers:
  - {name: correct, type: contains}
  # - {name: valid_json, type: json_valid}

# What counts as a regression. Modes: point | significant (default) | noninferior.
gates:
  - {metric: quality.pass_rate, max_decrease: 0.02}
  - {metric: cost.mean, max_increase: "10%"}
  - {metric: latency.p95, max_increase: "25%"}
  - {metric: errors.rate, max: 0.01}
decision: {mode: significant, confidence: 0.95}
"""

STARTER_GOLDEN = """\
{"id": "capital-fr", "input": "What is the capital of France? Answer with one word.", "expected": "Paris"}
{"id": "capital-jp", "input": "What is the capital of Japan? Answer with one word.", "expected": "Tokyo"}
"""
