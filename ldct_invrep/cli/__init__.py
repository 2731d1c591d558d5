"""``ldct-invrep``: the command line (click).

Commands: ``denoise`` (LIR restoration, paper section 3.3: ``G_Y(E_X(x))`` slice by slice), ``simulate-dose``
(projection-domain noise insertion), ``evaluate`` (PSNR/SSIM/RMSE on named HU windows), ``info`` (what a
checkpoint holds), ``prepare`` (check a dataset copy, write its datalist), ``train`` (run a MONAI bundle),
``demo`` (the first three on the shipped sample series) and ``adapt`` (continue the unpaired training on a user's
own low-dose scans; module ``adapt``).

Exit status: 0 done; 2 bad usage, bad input or a failed download (one line ``error: <path>: <problem>``); 1 unexpected failure
(one line; rerun with ``--debug`` for the traceback); 130 interrupted. Outputs are written atomically: an
interrupted or failed run leaves no partial output.

Modules: ``commands`` (the group, every command registered on it, the entry point), one module per command
(``denoise``, ``simulate``, ``evaluation``, ``info``, ``prepare``, ``train``, ``shipped``: fetch and bundle
export, ``demo``, ``adapt``), ``options`` (shared options), ``console`` (exit statuses, stderr lines; an
``InputError`` is printed with its remedies in the command's options), ``volumes`` (output format, rate line).
What the commands do to volumes is ``ldct_invrep.pipelines``. Heavy modules (torch, MONAI, pydicom) are
imported inside the commands so that ``--help`` stays fast.
"""

from ldct_invrep.cli.commands import cli, main

__all__ = ["cli", "main"]
