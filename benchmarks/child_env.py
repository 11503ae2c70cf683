"""Running a benchmark again in a child process with other OpenBLAS settings.

OpenBLAS reads OPENBLAS_CORETYPE once, when numpy loads it, so comparing kernels takes a new
process. The child gets a copy of the environment with the one variable set; the user's own
environment is never changed.
"""
import os
import subprocess
import sys


def rerun_with_coretype(script, name):
    """Runs `script` with this process's arguments minus --coretype, under OPENBLAS_CORETYPE=name;
    returns the child's exit code."""
    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--coretype":
            skip = True
        elif not arg.startswith("--coretype="):
            argv.append(arg)
    env = {**os.environ, "OPENBLAS_CORETYPE": name}
    return subprocess.run([sys.executable, script, *argv], env=env).returncode
