"""Checks a `soma run --metrics` file: the number of epochs and the final test accuracy (or, with
--max-loss, that the final test loss is at most that: a model whose target is not class labels)."""
import argparse
import json
import sys

ap = argparse.ArgumentParser()
ap.add_argument("metrics")
ap.add_argument("--epochs", type=int, required=True)
ap.add_argument("--min-accuracy", type=float)
ap.add_argument("--max-loss", type=float)
ap.add_argument("--loss-key", default="test_loss", help="the loss --max-loss checks, e.g. validation_loss")
ap.add_argument("--key", default="test_accuracy", help="the accuracy to check, e.g. validation_accuracy")
ap.add_argument("--at-most", action="store_true", help="--epochs is a maximum (early stopping)")
args = ap.parse_args()
rows = [json.loads(line) for line in open(args.metrics) if line.strip()]
if len(rows) > args.epochs or (not args.at_most and len(rows) != args.epochs):
    sys.exit(f"expected {'at most ' if args.at_most else ''}{args.epochs} epochs, got {len(rows)}")
if args.max_loss is not None:
    if any(k.endswith("accuracy") for r in rows for k in r):
        sys.exit("a model whose loss's target is not class labels reports no accuracy")
    loss = [r for r in rows if args.loss_key in r][-1][args.loss_key]
    print(f"final {args.loss_key} {loss:.4f} (needs at most {args.max_loss})")
    sys.exit(f"loss {loss:.4f} is above {args.max_loss}" if loss > args.max_loss else 0)
acc = [r for r in rows if args.key in r][-1][args.key]
print(f"final test accuracy {acc:.4f} (needs {args.min_accuracy})")
if acc < args.min_accuracy:
    sys.exit(f"accuracy {acc:.4f} is below {args.min_accuracy}")
