"""What the campaigns' curve figures share: axes labelled the same way and the figure written the same way."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def finish_and_save(fig: plt.Figure, axes, titles: list[str], ylabel: str, suptitle: str, out: Path) -> None:
    """Title, iteration axis, ``ylabel``, grid and legend on each of ``axes``; ``suptitle``; written to ``out``."""
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel("training iteration")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(suptitle)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
