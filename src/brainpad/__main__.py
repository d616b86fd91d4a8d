"""``python -m brainpad`` runs the command-line interface."""

from brainpad.cli import main

raise SystemExit(main())
