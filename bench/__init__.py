"""spacy-mlm's benchmarks and evaluations: `python -m bench SUITE ...` (bench/__main__.py lists the suites).

Suites import the shared helpers of this package only (common.py: data, result rows and their header,
timing; eval_tasks.py: the task fine-tuning both systems share), never each other. Results go to
bench/results/SUITE.jsonl, one row per run, each starting with the same header (commit, device,
versions, command); BENCHMARKS.md gives every figure with its command.
"""
