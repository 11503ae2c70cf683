"""experiments.blas: which OpenBLAS core type train.py and the benchmarks ask for, and when."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.blas import choose_openblas_coretype

ROOT = Path(__file__).resolve().parents[1]
AVX512 = "fpu sse2 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl"


@pytest.fixture
def cpuinfo(tmp_path):
    """Writes a one-CPU /proc/cpuinfo with the given flags; returns its path."""
    def write(flags):
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\n")
        return str(path)
    return write


def choose(environ, cpuinfo_path):
    return choose_openblas_coretype(environ, cpuinfo=cpuinfo_path, modules={})


def test_an_avx512_cpu_gets_skylakex_when_nothing_is_set(cpuinfo):
    env = {}
    message = choose(env, cpuinfo(AVX512))
    assert env["OPENBLAS_CORETYPE"] == "SkylakeX" and "SkylakeX" in message


def test_a_pin_to_an_avx2_core_is_replaced_and_the_log_names_it(cpuinfo):
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    message = choose(env, cpuinfo(AVX512))
    assert env["OPENBLAS_CORETYPE"] == "SkylakeX"
    assert "replaces OPENBLAS_CORETYPE=Haswell" in message and "NPDL_OPENBLAS_CORETYPE=off" in message


@pytest.mark.parametrize("core", ["SkylakeX", "cooperlake", "SAPPHIRERAPIDS"])
def test_a_value_naming_an_avx512_core_is_kept(cpuinfo, core):
    env = {"OPENBLAS_CORETYPE": core}
    assert "kept" in choose(env, cpuinfo(AVX512))
    assert env["OPENBLAS_CORETYPE"] == core


@pytest.mark.parametrize("before", [{}, {"OPENBLAS_CORETYPE": "Haswell"}])
def test_opting_out_leaves_the_variable_exactly_as_it_was(cpuinfo, before):
    env = {**before, "NPDL_OPENBLAS_CORETYPE": "off"}
    message = choose(env, cpuinfo(AVX512))
    assert env == {**before, "NPDL_OPENBLAS_CORETYPE": "off"}
    assert "left as it is" in message


def test_a_cpu_without_avx512_is_left_to_openblas(cpuinfo):
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    message = choose(env, cpuinfo("fpu sse2 avx avx2 fma"))
    assert env == {"OPENBLAS_CORETYPE": "Haswell"} and "no AVX-512" in message


def test_avx512f_without_the_subsets_skylakex_needs_is_left_alone(cpuinfo):
    env = {}
    message = choose(env, cpuinfo("fpu avx2 avx512f avx512cd"))
    assert env == {} and "without avx512bw, avx512dq, avx512vl" in message


def test_an_unreadable_cpuinfo_changes_nothing(tmp_path):
    env = {}
    choose(env, str(tmp_path / "missing"))
    assert env == {}


def test_too_late_once_numpy_is_imported(cpuinfo):
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    message = choose_openblas_coretype(env, cpuinfo=cpuinfo(AVX512), modules={"numpy": object()})
    assert env == {"OPENBLAS_CORETYPE": "Haswell"} and "too late" in message


def test_importing_framework_never_chooses_a_core_type():
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run([sys.executable, "-c", "import os, framework; print(os.environ.get('OPENBLAS_CORETYPE'))"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"
