"""``python -m evorag.cli``: the same as the ``evorag`` command."""

from evorag.cli import main

raise SystemExit(main())
