"""mrishare: share MRI data with participants, de-identified."""

__version__ = "0.1.0"
