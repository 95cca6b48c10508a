"""Checks a `soma run --metrics` file: the number of epochs and the final test accuracy."""
import argparse
import json
import sys

ap = argparse.ArgumentParser()
ap.add_argument("metrics")
ap.add_argument("--epochs", type=int, required=True)
ap.add_argument("--min-accuracy", type=float, required=True)
args = ap.parse_args()
rows = [json.loads(line) for line in open(args.metrics) if line.strip()]
if len(rows) != args.epochs:
    sys.exit(f"expected {args.epochs} epochs, got {len(rows)}")
acc = rows[-1]["test_accuracy"]
print(f"final test accuracy {acc:.4f} (needs {args.min_accuracy})")
if acc < args.min_accuracy:
    sys.exit(f"accuracy {acc:.4f} is below {args.min_accuracy}")
