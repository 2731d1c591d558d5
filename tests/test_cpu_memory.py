"""ldct_invrep.cpu_memory: freed activations are reused instead of page-faulted again (glibc)."""

from __future__ import annotations

import subprocess
import sys

import pytest

_FAULTS = """
import resource, sys, torch
if sys.argv[1] == "retain":
    from ldct_invrep.cpu_memory import retain_freed_memory
    assert retain_freed_memory() and retain_freed_memory()
conv = torch.nn.Conv2d(16, 16, 3, padding=1)
x = torch.randn(1, 16, 512, 512)  # a 16 MB activation of a 512 x 512 slice
def passes(n):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with torch.inference_mode():
        for _ in range(n):
            y = x
            for _ in range(4):
                y = torch.relu(conv(y)) + y  # residual blocks: activations allocated and freed in turn
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
passes(3)
print(passes(5))
"""


def _page_faults(mode: str, env: dict[str, str] | None = None) -> int:
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_activations_are_reused_not_faulted_again() -> None:
    # a 16 MB activation is 4096 pages; glibc alone maps fresh ones for many of them at every pass
    assert _page_faults("plain") > 5 * 4096
    assert _page_faults("retain") < 1000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_users_malloc_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    import ldct_invrep.cpu_memory as cpu_memory

    monkeypatch.setattr(cpu_memory, "_done", None)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert cpu_memory.retain_freed_memory() is False
