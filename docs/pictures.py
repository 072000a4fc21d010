"""Screenshots of `lstmkit explain --html` pages, taken in headless Chromium, for the README.

    python docs/pictures.py            # writes docs/images/explain-*.png (needs the browser extra and Chromium)

Each configuration's page is written to a temporary folder, opened at 1280 px, and its unrolled
network (the `#unrolled` drawing) saved as a PNG.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from lstmkit.diagram import explain_pictures

IMAGES = Path(__file__).resolve().parent / "images"
# file stem -> explain_pictures arguments: the README's example, a projected bidirectional stack, a long GRU
CONFIGURATIONS = {
    "explain-lstm-2-layers": dict(input_size=20, hidden_size=100, num_layers=2, seq_len=3, batch=1),
    "explain-bidirectional-proj": dict(
        input_size=20, hidden_size=100, num_layers=2, seq_len=4, batch=3, bidirectional=True, proj_size=10
    ),
    "explain-gru-50-steps": dict(input_size=8, hidden_size=16, num_layers=1, seq_len=50, batch=2, mode="GRU"),
}


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no Chromium: apt-get install chromium", file=sys.stderr)
        return 1
    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for stem, arguments in CONFIGURATIONS.items():
            html, _ = explain_pictures(**arguments)
            path = Path(folder) / f"{stem}.html"
            path.write_text(html, encoding="utf-8")
            page.goto(path.as_uri())
            page.locator("#unrolled").screenshot(path=str(IMAGES / f"{stem}.png"))
            print(IMAGES / f"{stem}.png")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
