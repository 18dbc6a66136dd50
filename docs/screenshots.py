"""Screenshots of the MLflow UI as a user sees it, for docs/mlflow.md: headless Chromium, driven by Playwright,
against `mlflow ui` on 127.0.0.1, for a sweep that has run and been reported.

    apt install chromium && pip install -e '.[docs]'
    python docs/screenshots.py examples/quickstart.yaml docs/mlflow

Writes into the folder: genai-default.png (the experiment's plain link: MLflow 3.17's GenAI view),
runs.png (the link monosweep prints: the model-training view, the sweep's run expanded), charts.png (its
chart view: the `layers` curves), trial-filters.png (a trial's conv1 filters) and report-filters.png (the
report's filters side by side, on the sweep's run).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlflow import MlflowClient  # noqa: E402

from sweep.plan import plan_sweep  # noqa: E402
from sweep.spec import load_spec  # noqa: E402
from sweep.tracking import MODEL_TRAINING_VIEW, tracking_uri  # noqa: E402
from tests.support.servers import free_port, wait_for_port  # noqa: E402

# Chromium as a test browser on a closed network: no background connections, no sandbox (as root), no GPU.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SETTLE_MS = 6000  # the UI fetches runs and draws charts after the page loads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help="a sweep that has run and been reported")
    parser.add_argument("out", type=Path, help="folder for the PNG files")
    parser.add_argument("--browser", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    spec = load_spec(args.spec)
    plan = plan_sweep(spec, args.spec, None, check_inputs=False)
    uri = tracking_uri(spec, plan.storage)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(spec.name)
    if experiment is None:
        sys.exit(f"no MLflow experiment {spec.name!r} at {uri}: run the sweep first (monosweep run {args.spec})")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    trial = next(r for r in runs if r.data.tags.get("monosweep.role") == "trial"
                 and r.data.tags.get("method") not in ("random", "supervised"))
    sweep = next(r for r in runs if r.data.tags.get("monosweep.role") == "sweep")

    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host",
                               "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}"
        wait_for_port(port, timeout=120)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.browser, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1500, "height": 900})

            def shot(name: str, url: str | None = None, full: bool = False) -> None:
                if url is not None:
                    page.goto(url)
                    page.wait_for_timeout(SETTLE_MS)
                page.screenshot(path=args.out / name, full_page=full)
                print(f"wrote {args.out / name}")

            shot("genai-default.png", base)
            page.goto(f"{base}/runs?{MODEL_TRAINING_VIEW}")
            page.wait_for_timeout(SETTLE_MS)
            close = page.get_by_role("button", name="Close")  # the assistant panel, open on a first visit
            if close.count():
                close.first.click()
            page.locator('button[data-component-id*="runnamecellrenderer"]').first.click()  # expand the sweep
            page.wait_for_timeout(1500)
            shot("runs.png")
            page.set_viewport_size({"width": 1500, "height": 1300})
            shot("charts.png", f"{base}/runs?{MODEL_TRAINING_VIEW}&compareRunsMode=CHART")
            page.set_viewport_size({"width": 1500, "height": 900})
            def artifact(name: str, run_id: str, *path: str) -> None:
                page.goto(f"{base}/runs/{run_id}/artifacts?{MODEL_TRAINING_VIEW}")
                page.wait_for_timeout(SETTLE_MS)
                for part in path:  # folders, then the file: clicked as a user would
                    page.get_by_text(part, exact=True).first.click()
                    page.wait_for_timeout(1500)
                shot(name)

            artifact("trial-filters.png", trial.info.run_id, "conv1_filters.png")
            artifact("report-filters.png", sweep.info.run_id, "report", "conv1_filters.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
