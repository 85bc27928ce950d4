#!/bin/sh
# Runs the integration suite with Debian's interpreter (it has websockets).
exec /usr/bin/python3 "$(dirname "$0")/run.py" "$@"
