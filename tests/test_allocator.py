import subprocess
import sys

import pytest

# as a search's candidate pages: 16 arrays of 2 MB held together, then freed, 10 times over; the minor
# page faults the rounds after the first cost
PROBE = """
import resource, sys
import numpy as np
from tokensearch.allocator import reuse_freed_memory
ok = reuse_freed_memory() if sys.argv[1] == "reuse" else True
def page_round():
    pages = [np.ones((5500, 96), np.float32) for _ in range(16)]
    del pages
page_round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    page_round()
print(int(ok), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    ok, faults = out.split()
    return ok == "1", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_arrays_are_reused_without_new_page_faults():
    ok, reused = _faults("reuse")
    _, system = _faults("system")
    assert ok
    assert system > 10 * 16 * 300  # the system's way: every 2 MB array faults its ~500 pages in again
    assert reused < system / 20
