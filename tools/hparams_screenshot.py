"""Screenshot TensorBoard's HPARAMS tab for a sweep, in a real (headless) browser.

    python tools/hparams_screenshot.py <sweep dir> [out.png]

Starts `tensorboard --logdir <sweep dir>` on 127.0.0.1, asks its hparams plugin which sessions
(jobs) it lists with which metrics, prints them, and has headless Chromium (Debian package
`chromium`) render the HPARAMS table view into out.png (default: <sweep dir>/hparams.png).
Exits non-zero when TensorBoard lists no session or a session lacks the final metrics.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def sessions(base: str) -> tuple[list[str], list[dict]]:
    """Metric tags and session groups the hparams plugin serves (what the HPARAMS tab shows)."""
    experiment = post(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
    metrics = [m["name"]["tag"] for m in experiment.get("metricInfos", [])]
    groups = post(f"{base}/data/plugin/hparams/session_groups", {
        "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
        "colParams": [{"metric": {"tag": t}, "order": "ORDER_UNSPECIFIED",
                       "missingValuesFirst": False} for t in metrics],
        "startIndex": 0, "sliceSize": 1000})
    return metrics, groups.get("sessionGroups", [])


def main(logdir: str, out: str | None = None) -> int:
    out_path = Path(out or Path(logdir) / "hparams.png")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    board = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", logdir,
                              "--host", "127.0.0.1", "--port", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        metrics, groups = [], []
        for _ in range(120):  # TensorBoard starts, then loads the event files
            time.sleep(1)
            try:
                metrics, groups = sessions(base)
            except OSError:
                continue
            if groups:
                break
        print(f"metrics: {', '.join(metrics)}")
        for group in groups:
            session = group["sessions"][0]
            values = {v["name"]["tag"]: round(v["value"], 4) for v in session["metricValues"]}
            print(f"{session['name']}: {json.dumps(group['hparams'])} {json.dumps(values)}")
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-quic", "--no-first-run", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={profile}", "--hide-scrollbars",
                            "--virtual-time-budget=20000", f"--screenshot={out_path.resolve()}",
                            "--window-size=1600,900", f"{base}/#hparams"],
                           check=True, capture_output=True, timeout=180)
        print(f"wrote {out_path}")
        complete = groups and all(
            {v["name"]["tag"] for v in g["sessions"][0]["metricValues"]} >= set(metrics)
            for g in groups)
        return 0 if complete else 1
    finally:
        board.terminate()
        board.wait(timeout=30)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:3]))
