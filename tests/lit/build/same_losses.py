"""Compares two --metrics files epoch by epoch on everything but the timings and the thread count
(results do not depend on it): the losses and accuracies are written as the shortest text of the
exact double, so equal text is equal bits.
Usage: same_losses.py A.jsonl B.jsonl"""
import json
import sys

TIMINGS = {"samples_per_second", "seconds", "jit_ms", "threads"}


def load(path):
    with open(path) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in f if line.strip()]


a, b = load(sys.argv[1]), load(sys.argv[2])
if not a:
    sys.exit(f"{sys.argv[1]}: no epochs")
if a != b:
    for x, y in zip(a, b):
        if x != y:
            sys.exit(f"epoch {x.get('epoch')} differs:\n  {x}\n  {y}")
    sys.exit(f"{len(a)} epochs against {len(b)}")
print(f"{len(a)} epochs, the same losses")
