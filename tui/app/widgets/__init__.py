"""Widgets that screens reuse: the tag table, the image preview, the big-letter passphrase."""
