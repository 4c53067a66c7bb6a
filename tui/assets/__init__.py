"""Package data: templates, word lists and Annex E tables that mrishare needs at run time."""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
