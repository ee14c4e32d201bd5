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
  - {name: correct, type: icontains}   # the answer contains the row's `expected`, any case
  # - {name: valid_json, type: json_valid}

# What counts as a regression. Modes: point | significant (default) | noninferior.
# The tolerances fit the 30 starter cases: 30 cases can only tell large changes from noise.
# As golden.jsonl grows, tighten them (e.g. max_decrease: 0.02 needs several hundred cases);
# `replaygate validate` warns when a gate is too tight for the dataset to decide.
gates:
  - {metric: quality.pass_rate, max_decrease: 0.25}
  - {metric: cost.mean, max_increase: "10%"}
  - {metric: latency.p95, max_increase: "25%"}
  - {metric: errors.rate, max: 0.20}
decision: {mode: significant, confidence: 0.95}

# history: .replaygate/history.sqlite   # keep every gate's runs: `replaygate history`, `--drift`
# Write reports with: replaygate gate --md runs/report.md --html runs/report.html --save-runs runs/
"""

STARTER_GOLDEN = """\
{"id": "capital-fr", "input": "What is the capital of France? Answer with one word.", "expected": "Paris"}
{"id": "capital-jp", "input": "What is the capital of Japan? Answer with one word.", "expected": "Tokyo"}
{"id": "capital-it", "input": "What is the capital of Italy? Answer with one word.", "expected": "Rome"}
{"id": "capital-ca", "input": "What is the capital of Canada? Answer with one word.", "expected": "Ottawa"}
{"id": "capital-au", "input": "What is the capital of Australia? Answer with one word.", "expected": "Canberra"}
{"id": "capital-eg", "input": "What is the capital of Egypt? Answer with one word.", "expected": "Cairo"}
{"id": "capital-ke", "input": "What is the capital of Kenya? Answer with one word.", "expected": "Nairobi"}
{"id": "capital-pe", "input": "What is the capital of Peru? Answer with one word.", "expected": "Lima"}
{"id": "capital-no", "input": "What is the capital of Norway? Answer with one word.", "expected": "Oslo"}
{"id": "capital-kr", "input": "What is the capital of South Korea? Answer with one word.", "expected": "Seoul"}
{"id": "math-add", "input": "What is 17 + 25? Answer with the number only.", "expected": "42"}
{"id": "math-mul", "input": "What is 12 times 12? Answer with the number only.", "expected": "144"}
{"id": "math-sub", "input": "What is 100 minus 37? Answer with the number only.", "expected": "63"}
{"id": "math-div", "input": "What is 81 divided by 9? Answer with the number only.", "expected": "9"}
{"id": "math-sq", "input": "What is the square root of 169? Answer with the number only.", "expected": "13"}
{"id": "unit-km", "input": "How many meters are in a kilometer? Answer with the number only.", "expected": "1000"}
{"id": "unit-min", "input": "How many minutes are in two hours? Answer with the number only.", "expected": "120"}
{"id": "unit-week", "input": "How many days are in three weeks? Answer with the number only.", "expected": "21"}
{"id": "sci-water", "input": "What is the chemical formula of water?", "expected": "H2O"}
{"id": "sci-planet", "input": "Which planet is known as the Red Planet? Answer with one word.", "expected": "Mars"}
{"id": "sci-gas", "input": "Which gas do plants absorb from the air for photosynthesis?", "expected": "carbon dioxide"}
{"id": "sci-boil", "input": "At sea level, at how many degrees Celsius does water boil? Answer with the number only.", "expected": "100"}
{"id": "lang-opp", "input": "What is the opposite of 'hot'? Answer with one word.", "expected": "cold"}
{"id": "lang-plural", "input": "What is the plural of 'mouse'? Answer with one word.", "expected": "mice"}
{"id": "lang-fr", "input": "Translate 'thank you' into French.", "expected": "merci"}
{"id": "lang-es", "input": "Translate 'cat' into Spanish. Answer with one word.", "expected": "gato"}
{"id": "fact-author", "input": "Who wrote 'Romeo and Juliet'? Answer with the author's last name.", "expected": "Shakespeare"}
{"id": "fact-ocean", "input": "What is the largest ocean on Earth? Answer with its name.", "expected": "Pacific"}
{"id": "fact-continent", "input": "On which continent is Brazil? Answer with one word.", "expected": "South America"}
{"id": "fact-colors", "input": "How many colors are in a rainbow? Answer with the number only.", "expected": "7"}
"""

# What must not be committed: the response cache and history database (both under .replaygate/;
# commit the cache deliberately, `git add -f`, to run CI offline from it), run files and reports.
STARTER_GITIGNORE = """\
# replaygate: response cache and history (.replaygate/), run files and reports
.replaygate/
runs/
replaygate-report.*
"""
