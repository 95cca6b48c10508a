import os
import re
import sys

kinds = re.findall(r"^DIAG\((\w+),", open(sys.argv[1]).read(), re.M)
text = ""
for name in os.listdir(sys.argv[2]):
    if name.endswith(".soma"):
        text += open(os.path.join(sys.argv[2], name)).read()
missing = [k for k in kinds if f"[{k}]" not in text]
if missing:
    sys.exit("diagnostic kinds without a lit test: " + ", ".join(missing))
print(f"{len(kinds)} diagnostic kinds, each tested")
