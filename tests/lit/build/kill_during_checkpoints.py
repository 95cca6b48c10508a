"""Starts PROGRAM training with a checkpoint after every epoch (thousands a second), kills it
with SIGKILL at several moments, and checks each time that CHECKPOINT is still a whole file
that the program loads. Usage: kill_during_checkpoints.py PROGRAM CHECKPOINT"""
import os
import signal
import subprocess
import sys
import time

program, checkpoint = sys.argv[1], sys.argv[2]
for delay in (0.05, 0.11, 0.23, 0.37, 0.5):
    p = subprocess.Popen([program, "train", "--epochs", "100000000", "--checkpoint", checkpoint, "--no-progress"],
                         stdout=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = subprocess.run([program, "eval", "--weights", checkpoint], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"after a kill at {delay} s the checkpoint does not load:\n{r.stderr}")
print("every checkpoint loads")
