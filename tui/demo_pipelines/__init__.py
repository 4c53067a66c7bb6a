"""Small real pipeline commands for trying cloud processing (issue 14) with `mrishare worker`."""
