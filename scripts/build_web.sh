#!/usr/bin/env bash
# Refresh the dashboard's vendored chart library (api/static/vendor/) from web/package-lock.json.
# Maintainers only: the vendored files are committed, so running the product needs no node or npm.
# To upgrade: change the version in web/package.json, `npm install` in web/, then run this script.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null 2>&1 || { echo "build_web: npm not found; install Node.js 20+ with npm" >&2; exit 1; }
(cd web && npm ci --no-audit --no-fund)
pkg=web/node_modules/lightweight-charts
vendor=api/static/vendor
mkdir -p "$vendor"
cp "$pkg/dist/lightweight-charts.standalone.production.js" "$vendor/"
cp "$pkg/LICENSE" "$vendor/lightweight-charts.LICENSE"
if [ -f "$pkg/NOTICE" ]; then cp "$pkg/NOTICE" "$vendor/lightweight-charts.NOTICE"; fi
version=$(node -p "require('./$pkg/package.json').version")
echo "build_web: vendored lightweight-charts $version into $vendor (update $vendor/README.md if it changed)"
