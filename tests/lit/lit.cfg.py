# lit configuration for Soma: each test is a .soma (or .test) file with RUN and CHECK lines.
import os

import lit.formats

config.name = "soma"
config.test_format = lit.formats.ShTest(True)
config.suffixes = [".soma", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = config.obj_root
config.excludes = ["Inputs"]

config.substitutions.append(("%soma", config.soma))
config.substitutions.append(("%examples", os.path.join(config.src_root, "examples")))
config.substitutions.append(("%srcroot", config.src_root))
config.substitutions.append(("%python", config.python))
# Compiling and linking a C program against a library from `soma build --lib`.
config.substitutions.append(("%link_soma_lib", "-lstdc++ -lm -lmvec -lpthread " + config.runtime_link_flags))
config.substitutions.append(("%inputs", os.path.join(os.path.dirname(__file__), "Inputs")))
# FileCheck and `not` from LLVM 19, ahead of anything else on PATH.
config.environment["PATH"] = os.pathsep.join([config.llvm_tools, os.environ.get("PATH", "")])
# Compiled machine code is cached in the build tree, shared by the tests.
config.environment["SOMA_CACHE_DIR"] = os.path.join(config.obj_root, "cache")
# Long end-to-end runs (MNIST) can be left out with: lit --param quick=1 (or SOMA_LIT_QUICK=1,
# which the sanitizer build's run of the suite sets).
if lit_config.params.get("quick") or os.environ.get("SOMA_LIT_QUICK"):
    config.available_features.add("quick")
    config.environment["SOMA_LIT_QUICK"] = "1"  # tests that scale themselves down read it
try:
    if " avx512f " in " " + open("/proc/cpuinfo").read().replace("\n", " ") + " ":
        config.available_features.add("avx512")
except OSError:
    pass
# Oracle tests against PyTorch run where python3-torch is installed (bench/run --torch installs it).
import subprocess

# Debian's package is for the system's python3, which need not be the one first on PATH.
for python in [config.python, "/usr/bin/python3"]:
    try:
        if subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0:
            config.available_features.add("torch")
            config.substitutions.append(("%torch_python", python))
            break
    except OSError:
        pass
