#!/bin/sh
# Runs test_tabs.py (the battery and the API) with the walls-tabs binary.
exec python3 "$2/test_tabs.py" "$@"
