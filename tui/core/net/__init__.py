"""DICOM networking with nodes (pynetdicom): echo, find, get, move, store, and the configured nodes.
May import dicom and the top-level modules; never delivery."""
