"""Run the opseq CLI as ``python -m opseq``."""

from __future__ import annotations

import sys

from opseq.cli import main

sys.exit(main())
