"""The reports as a reader sees them: rendered in a real headless Chromium (driven by
Playwright, using the system's `chromium`, never a downloaded browser).

- report.md, converted to HTML as a Markdown viewer would (Python-Markdown with tables):
  every figure loads (a decoded image, natural width > 0), every numbered table is there as
  a table, nothing is logged as an error; a full-page screenshot is saved.
- `snakemake --report`'s page (one self-contained file, drawn by JavaScript): it renders, every
  embedded image decodes, each category's results table lists its results, a figure opened
  from the menu shows; screenshots are saved.

Screenshots land in the test's temporary folder (pytest's basetemp), to be looked at.
Skips, saying why, where Chromium or the Python packages are missing (`.ci/run` installs
Debian's chromium where it can, and `pip install -e '.[test]'` the packages).
"""

import re
import shutil

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.workflow]

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, url: str, errors: list[str], width: int = 1280):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    # Snakemake's page loads its style sheet from a CDN: without network that one fails, and
    # it is Snakemake's, not the report's; a local file or embedded image must never fail
    page.on("requestfailed", lambda r: None if r.url.startswith("http")
            else errors.append(f"request failed: {r.url[:120]}"))
    page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
    return page


def test_markdown_report_in_a_browser(smoke_run, browser, tmp_path):
    markdown = pytest.importorskip("markdown", reason="markdown is not installed "
                                   "(pip install -e '.[test]')")
    folder = smoke_run / "results" / "report"
    md = (folder / "report.md").read_text()
    body = markdown.markdown(md, extensions=["tables"])
    # the page reads its images from the report's folder, as a viewer of report.md does
    html = tmp_path / "report.html"
    html.write_text(f'<!doctype html><html><head><meta charset="utf-8">'
                    f'<base href="{folder.as_uri()}/"><title>report</title>'
                    '<style>body{font-family:sans-serif;max-width:70em;margin:auto}'
                    'table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}'
                    f'img{{max-width:100%}}</style></head><body>{body}</body></html>')
    errors: list[str] = []
    page = open_page(browser, html.as_uri(), errors)
    page.wait_for_function("Array.from(document.images).every(i => i.complete)",
                           timeout=TIMEOUT_MS)
    images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), "
                           "i.naturalWidth])")
    figures = re.findall(r"^!\[Figure \d+\]", md, flags=re.M)
    assert len(images) == len(figures) > 0
    broken = [src for src, width in images if not width]
    assert not broken, f"images that did not load: {broken}"

    # every numbered table is a rendered <table> right after its title, with its rows
    titles = re.findall(r"^\*\*(Table \d+): ", md, flags=re.M)
    shown = page.evaluate("""Array.from(document.querySelectorAll('table')).map(t => {
        const p = t.previousElementSibling;
        return [p ? p.textContent.split(':')[0] : '', t.querySelectorAll('tbody tr').length];
    })""")
    assert [t for t, _ in shown] == titles
    assert all(rows > 0 for _, rows in shown)
    page.screenshot(path=str(tmp_path / "report_md.png"), full_page=True)
    assert not errors, errors
    page.close()


def test_snakemake_report_in_a_browser(smoke_run, browser, tmp_path):
    html = smoke_run / "results" / "report" / "report.html"
    errors: list[str] = []
    page = open_page(browser, html.as_uri(), errors)
    # the page is drawn by React from the embedded `results` and `categories`
    page.wait_for_function("document.querySelector('#app') && "
                           "document.querySelector('#app').innerText.length > 0",
                           timeout=TIMEOUT_MS)
    results = page.evaluate("results")
    categories = page.evaluate("categories")
    expected = {"results/lr_search/heatmap.png", "results/compress/cut.png",
                "results/compress/feature_si.png", "results/report/summary.csv",
                "results/controls/frontier.png", "results/scratch/curves.png",
                "results/layerwise/kept.png", "results/layerwise/width.png",
                "results/layerwise/layer_si.png"}
    assert expected <= set(results)
    images = [p for p, r in results.items() if r["mime_type"].startswith("image/")]
    # heatmap, 2 trials, 4 curves, 4 layer SI, cut, feature SI, frontier, scratch's curves,
    # layer-wise: kept channels, width, layer SI; its fine-tuned model's layer SI and the
    # curves of every fine-tuning (3 selectors x 2 repeats)
    assert len(images) == 18 + 1 + 6, sorted(images)
    sizes = page.evaluate("""async paths => Promise.all(paths.map(p => new Promise(done => {
        const img = new Image();
        img.onload = () => done([p, img.naturalWidth]);
        img.onerror = () => done([p, 0]);
        img.src = results[p].data_uri;
    })))""", images)
    assert not [p for p, w in sizes if not w], f"images that do not decode: {sizes}"
    page.screenshot(path=str(tmp_path / "snakemake_report_start.png"))

    # every category's results table lists its results, and each figure opened from there
    # (the eye button) is shown, decoded
    shown = 0
    for category, subcategories in categories.items():
        for sub, paths in subcategories.items():
            page.locator("nav ol li a").first.click()  # home
            page.get_by_text(category, exact=True).first.click()
            if page.get_by_text(sub, exact=True).count():  # a lone "Other" has no level
                page.get_by_text(sub, exact=True).first.click()
            table = page.locator("table").first
            table.wait_for(timeout=TIMEOUT_MS)
            listed = table.inner_text()
            for path in paths:
                # a result is listed by its labels where it has them, else by its path
                keys = list((results[path]["labels"] or {}).values()) or [path]
                row = table.locator("tr")
                for key in keys:
                    assert key in listed, (category, sub, path, key)
                    row = row.filter(has_text=key)
                assert row.count() == 1, (path, keys)
                if not results[path]["mime_type"].startswith("image/"):
                    continue
                row.locator("a").first.click()
                figure = page.locator(f'img[src="{results[path]["data_uri"]}"]')
                figure.wait_for(timeout=TIMEOUT_MS)
                assert figure.evaluate("img => img.complete && img.naturalWidth") > 0, path
                shown += 1
                if path.endswith("compress/cut.png"):
                    page.screenshot(path=str(tmp_path / "snakemake_report_figure.png"))
    assert shown == len(images)
    assert not errors, errors
    page.close()
