"""Seeded mutation fuzzing of real series through the CLI (see run.py; CI runs test_fuzz.py)."""
