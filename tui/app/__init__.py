"""The Textual app: a thin keyboard-driven shell over `tui.core`."""
