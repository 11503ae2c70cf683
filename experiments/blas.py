"""Choose OpenBLAS's kernels before numpy loads it. Pure standard library: never imports numpy.

numpy's bundled OpenBLAS (0.3.31, DYNAMIC_ARCH) picks its GEMM kernels once, when numpy is
imported: from OPENBLAS_CORETYPE if that names a known core, else from the CPU.
OPENBLAS_CORETYPE=SkylakeX selects the AVX-512 kernels: the same products to float32
rounding, about 1.7x the GEMM throughput on the reference MLP (benchmarks/bench_train.py).
On this project's machines (AMD EPYC, family 0x1A, AVX-512) OpenBLAS left alone picks SkylakeX;
the AVX2 kernels run there because the environment exports OPENBLAS_CORETYPE=Haswell.

So a value that names a core without AVX-512 is replaced on an AVX-512 CPU, and the log line
says so and names the value replaced. A value naming an AVX-512 core (SkylakeX, Cooperlake,
SapphireRapids) is kept.

The variable is read once, when numpy is first imported, so call choose_openblas_coretype()
at the very top of a script, before anything imports numpy (it says so when it is too late).
It never runs as a side effect of `import framework`.

    from experiments.blas import choose_openblas_coretype
    print(choose_openblas_coretype())   # first thing, before numpy

Override: NPDL_OPENBLAS_CORETYPE=off leaves OPENBLAS_CORETYPE exactly as it is (set or not).
"""
import os
import sys

OPT_OUT = "NPDL_OPENBLAS_CORETYPE"
# The AVX-512 subsets of -march=skylake-avx512, which OpenBLAS's SkylakeX kernels are built
# for; /proc/cpuinfo lists only what the OS has enabled (AVX-512 state saved by the kernel).
SKYLAKEX_FLAGS = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")
AVX512_CORES = ("skylakex", "cooperlake", "sapphirerapids")  # OpenBLAS's AVX-512 x86 cores


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

    Only on a CPU whose /proc/cpuinfo reports AVX-512 (F, CD, BW, DQ, VL), not when the variable
    already names an AVX-512 core, not when NPDL_OPENBLAS_CORETYPE=off, and not once numpy is
    already imported (too late to matter). Returns a one-line message for the log.
    """
    current = environ.get("OPENBLAS_CORETYPE")
    choice = environ.get(OPT_OUT, "").strip()
    if choice.lower() in ("off", "0", "no", "false", "none"):
        return (f"OpenBLAS: core type left as it is ({OPT_OUT}={choice}; "
                f"OPENBLAS_CORETYPE={current if current is not None else '(unset)'})")
    if current is not None and current.strip().lower() in AVX512_CORES:
        return f"OpenBLAS: OPENBLAS_CORETYPE={current} (an AVX-512 core, set in the environment), kept"
    if "numpy" in modules:
        return "OpenBLAS: numpy already imported, too late to choose a core type; left as it is"
    flags = cpu_flags(cpuinfo)
    missing = [flag for flag in SKYLAKEX_FLAGS if flag not in flags]
    if missing:
        kept = f"; OPENBLAS_CORETYPE={current} kept" if current is not None else ""
        return ("OpenBLAS: core type left to OpenBLAS (no AVX-512" if "avx512f" not in flags
                else f"OpenBLAS: core type left to OpenBLAS (AVX-512 without {', '.join(missing)}") + kept + ")"
    environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    replaced = f"; replaces OPENBLAS_CORETYPE={current} from the environment" if current is not None else ""
    return (f"OpenBLAS: OPENBLAS_CORETYPE=SkylakeX (CPU has AVX-512{replaced}; "
            f"{OPT_OUT}=off leaves the variable alone)")
