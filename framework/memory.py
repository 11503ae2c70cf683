"""How much memory the machine can give now: what a file's declared sizes are measured against
before anything is allocated."""
import os

GB = 1024 ** 3


def available_bytes():
    """Memory the system can give now (MemAvailable), else its total; None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def size(n):
    """Bytes in GB for a message: '1356.0 GB', or 'about 10^390 GB' past what a float holds."""
    return f"{n / GB:.1f} GB" if n < 10**18 * GB else f"10^{len(str(n // GB)) - 1} GB"
