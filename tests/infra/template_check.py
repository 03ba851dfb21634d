"""Run cfn-lint or checkov on a template whose path arrives later, on stdin.

``python template_check.py cfn-lint REGION`` or ``... checkov``, then write the template's path and a
newline. The tool is imported first (cfn-lint ~4 s, checkov ~7 s), so started before the stack is
synthesized, the imports overlap the synth. Prints the findings as JSON: cfn-lint's as a list of
lines, checkov's own report. This file imports nothing of the project: checkov runs it in its own
environment (its pinned dependencies clash with ours).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def cfn_lint(region: str) -> None:
    import cfnlint.api

    path = Path(sys.stdin.readline().strip())
    matches = cfnlint.api.lint(path.read_text(), regions=[region])
    print(json.dumps([str(m) for m in matches]))


def checkov() -> None:
    from checkov.main import Checkov

    path = sys.stdin.readline().strip()
    argv = ["--file", path, "--framework", "cloudformation", "--skip-download", "--output", "json"]
    Checkov(argv=argv).run()


if __name__ == "__main__":
    if sys.argv[1] == "cfn-lint":
        cfn_lint(sys.argv[2])
    else:
        checkov()
