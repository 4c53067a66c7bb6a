"""The app's screens: ledger (start), participant, batch, reveal, settings and small dialogs."""
