"""`relay-edge eval`: relay quality measured, as accuracy against the share of teacher tokens.

A front end of the relay loop like `ask` and `chat`: it consumes each answer's events and
usage, never changes how answers are written.

    dataset.py    reading GSM8K-style or generic JSONL items
    checking.py   is an answer right (by number, or math-verify for \\boxed{} and LaTeX)
    plan.py       the settings to run (policy and its parameters), parsed from specs
    records.py    one JSONL record per item and setting: what makes a run resumable
    runner.py     runs the settings over the items, appending records
    summary.py    per-setting accuracy (Wilson 95 % interval), offload, speed
    plot.py       the accuracy-against-teacher-tokens PNG
"""
