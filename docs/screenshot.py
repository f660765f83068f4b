"""Screenshot of a running daemon's status page with headless Chromium (for the README).

    .venv/bin/python docs/screenshot.py [--url http://127.0.0.1:8765/] [--out docs/status-page.png]

Needs `apt-get install chromium` and the `playwright` Python package (a dev extra); never `playwright install`.
"""

from __future__ import annotations

import argparse
import os

from playwright.sync_api import sync_playwright


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8765/")
    parser.add_argument("--out", default="docs/status-page.png")
    parser.add_argument("--token", default=os.environ.get("AL_STATUS_TOKEN"))
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("AL_CHROMIUM", "/usr/bin/chromium"))
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        page = browser.new_page(viewport={"width": 1100, "height": 900}, extra_http_headers=headers)
        response = page.goto(args.url)
        if response is None or response.status != 200:
            raise SystemExit(f"{args.url} answered {response and response.status}")
        page.wait_for_function(
            "document.querySelector('img').complete && document.querySelector('img').naturalWidth > 0"
        )
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
