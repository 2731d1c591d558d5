"""``python -m ldct_invrep.cli ...``: the same as the ``ldct-invrep`` console script."""

from ldct_invrep.cli.commands import main

main()
