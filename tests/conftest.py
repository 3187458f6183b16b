"""Shared fixtures: interpreters found on this machine, and real targets."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
