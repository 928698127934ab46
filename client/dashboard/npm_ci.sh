#!/bin/sh
# Installs the dashboard's npm packages (package-lock.json) in the current
# folder: from npm's cache alone when it holds them, so the build works
# offline once they were installed once; otherwise from the registry.
set -e
npm=${1:-npm}
"$npm" ci --offline --no-audit --no-fund --loglevel=error ||
  "$npm" ci --prefer-offline --no-audit --no-fund --loglevel=error
