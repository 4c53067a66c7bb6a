"""De-identification: the Annex E cleaner, pseudonyms, quarantine rules, the leak gate, audit records, the
study CSV. May import tui.core.dicom and the top-level core modules."""
