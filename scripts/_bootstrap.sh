# Sourced by the scripts: makes sure uv and the project's environment exist. Needs only python3.
# uv is installed into .candleflow/tools (a private venv) unless it is already on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if command -v uv >/dev/null 2>&1; then
  UV=$(command -v uv)
else
  UV=.candleflow/tools/bin/uv
  if [ ! -x "$UV" ]; then
    echo "candleflow: installing uv into .candleflow/tools (first run only)" >&2
    python3 -m venv .candleflow/tools
    .candleflow/tools/bin/python -m pip install --quiet --disable-pip-version-check uv
  fi
fi
"$UV" sync --frozen --quiet
