"""What importing a package loads: `datasets` (and the framework it uses) without pandas."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def modules_after(statement):
    """The names in sys.modules after `statement` runs in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", f"{statement}; import sys; "
                           "print('\\n'.join(sys.modules))"],
                          cwd=REPO, capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_importing_datasets_does_not_import_pandas():
    loaded = modules_after("import datasets")
    assert "datasets" in loaded and "pandas" not in loaded
