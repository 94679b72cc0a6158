"""The HTML report as a real browser (headless Chromium) renders it: the grid's colour scale is
what the browser paints, not only what the markup says."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from kdoctor.reports.html import to_html
from tests.unit.test_latency_scale import _report

# Run in the browser on a copy of the page (the page itself has no script): each matrix cell's
# painted background, keyed by its title ("a → b: ...").
PROBE = """<script>document.title = JSON.stringify(Object.fromEntries([...document.querySelectorAll('td[title]')]
  .map(td => [td.title.split(':')[0], getComputedStyle(td).backgroundColor])))</script>"""


def test_the_browser_paints_the_latency_scale(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: run ./scripts/install"
    page = to_html(_report())
    assert "<script" not in page
    path = tmp_path / "report.html"
    path.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", path.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title is not None, dom[:500]
    painted = json.loads(title.group(1).replace("&amp;", "&").replace("&gt;", ">").replace("&lt;", "<"))
    assert painted["a → b"] == painted["b → c"] == "rgb(86, 211, 100)"   # 0.4 ms of a 5 ms limit
    assert painted["a → c"] == "rgb(240, 183, 47)"                       # 3.5 ms: close to it
    assert painted["c → a"] == painted["c → b"] == "rgb(207, 34, 46)"    # no answer: failed
