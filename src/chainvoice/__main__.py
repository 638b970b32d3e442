"""``python -m chainvoice``: the ``chainvoice`` command."""

from chainvoice.cli import main

raise SystemExit(main())
