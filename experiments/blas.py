"""Choose OpenBLAS's kernels before numpy loads it. Pure standard library: never imports numpy.

numpy's bundled OpenBLAS (0.3.31, DYNAMIC_ARCH) picks its GEMM kernels once, when numpy is
imported: from OPENBLAS_CORETYPE if that names a known core, else from the CPU. Its CPU table
misses AMD family 0x1A (Zen 5/6: OpenBLAS issue #6029, fixed upstream by PR #6033) and relies
on a feature-based fallback there, which may land on the Haswell (AVX2) kernels although the
CPU has AVX-512. OPENBLAS_CORETYPE=SkylakeX selects the AVX-512 kernels: the same products to
float32 rounding, about 1.7x the GEMM throughput on the reference MLP (benchmarks/bench_train.py).

Note: where OPENBLAS_CORETYPE is already set (for instance OPENBLAS_CORETYPE=Haswell exported
by a machine's environment to pin the kernels), that choice is the user's and is kept.

The variable is read once, when numpy is first imported, so call choose_openblas_coretype()
at the very top of a script, before anything imports numpy (it says so when it is too late).
It never runs as a side effect of `import framework`.

    from experiments.blas import choose_openblas_coretype
    print(choose_openblas_coretype())   # first thing, before numpy

Override: OPENBLAS_CORETYPE set by the user is always kept; NPDL_OPENBLAS_CORETYPE=off
disables this choice.
"""
import os
import sys

OPT_OUT = "NPDL_OPENBLAS_CORETYPE"
# The AVX-512 subsets of -march=skylake-avx512, which OpenBLAS's SkylakeX kernels are built
# for; /proc/cpuinfo lists only what the OS has enabled (AVX-512 state saved by the kernel).
SKYLAKEX_FLAGS = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The set of feature flags of the first CPU in /proc/cpuinfo (empty when unreadable)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return set(value.split())
    except OSError:
        pass
    return set()


def choose_openblas_coretype(environ=os.environ, cpuinfo="/proc/cpuinfo", modules=sys.modules):
    """Sets environ["OPENBLAS_CORETYPE"] = "SkylakeX" where that is safe and useful.

    Only on a CPU whose /proc/cpuinfo reports AVX-512 (F, CD, BW, DQ, VL), only when the user
    has not set OPENBLAS_CORETYPE, not when NPDL_OPENBLAS_CORETYPE=off, and not once numpy is
    already imported (too late to matter). Returns a one-line message for the log.
    """
    if "OPENBLAS_CORETYPE" in environ:
        return f"OpenBLAS: OPENBLAS_CORETYPE={environ['OPENBLAS_CORETYPE']} set by the user, kept"
    choice = environ.get(OPT_OUT, "").strip()
    if choice.lower() in ("off", "0", "no", "false", "none"):
        return f"OpenBLAS: core type left to OpenBLAS ({OPT_OUT}={choice})"
    if "numpy" in modules:
        return "OpenBLAS: numpy already imported, too late to choose a core type; left as it is"
    flags = cpu_flags(cpuinfo)
    missing = [flag for flag in SKYLAKEX_FLAGS if flag not in flags]
    if missing:
        return ("OpenBLAS: core type left to OpenBLAS (no AVX-512" if "avx512f" not in flags
                else f"OpenBLAS: core type left to OpenBLAS (AVX-512 without {', '.join(missing)}") + ")"
    environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    return ("OpenBLAS: OPENBLAS_CORETYPE=SkylakeX (CPU has AVX-512; "
            f"{OPT_OUT}=off to leave the choice to OpenBLAS)")
