"""``python -m overtone``."""

from overtone.cli.main import main

raise SystemExit(main())
