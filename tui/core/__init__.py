"""Headless core: DICOM, NIfTI, zip, Nextcloud, ledger. Never imports textual or rich."""
