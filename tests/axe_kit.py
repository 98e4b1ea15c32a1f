"""axe-core (npm's, pinned in tests/axe/package.json; `make deps-axe` installs it) run on a Playwright page.

The script is injected as a script tag, so the page's context must be made with ``bypass_csp=True``
(only there: the CSP stays strict for everything else the tests do).
"""

from __future__ import annotations

from pathlib import Path

import pytest

AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def require_axe() -> None:
    """Skip the calling test where axe-core is not installed."""
    if not AXE.exists():
        pytest.skip("axe-core is not installed: `make deps-axe` (make test does it)")


def axe_violations(page) -> list[str]:
    """Serious or critical WCAG 2.2 AA violations axe-core finds on the page as it is now."""
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]
