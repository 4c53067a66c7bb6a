"""Reading and describing DICOM: scan by content, tag rows, PS3.15 Annex E tables, UID map, date shift,
hand edits, participant keys. Imports only the top-level core modules (errors, events, config)."""
