# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The panels in a real Jupyter front end, clicked by Chromium (Playwright) as a learner would.

A notebook with the sweep panel (a real Sweeper on the stand-in, 10-epoch runs) and the photo
panel is opened in JupyterLab 4 (``--front-end lab``) or in the classic Notebook 6
(``--front-end classic``) and run; then, in the browser:

* 运行 then 停止, three times (the third after reloading the page): each sweep must say 已停止
  within :data:`STOP_SECONDS` of the click, and 运行 must be usable again;
* the photo panel: an upload shows the photo at most 320 px wide with its prediction in view,
  the same file uploaded again is classified again, a quoted path works, the upload button has
  a tooltip, and no widget's tooltip reads "null" or "undefined".

The front end runs from its own environment (``--jupyter``: its ``jupyter`` command; it needs
``jupyterlab`` 4 with the ``jupyterlab_widgets`` that goes with the kernel's ipywidgets 8, or
``notebook`` 6 with ``widgetsnbextension`` 3.5.2: with 3.6.x, notebook 6.5.7 and an ipywidgets
7.7.1 kernel, every widget output is stored with an empty model id and hidden, a bare Button
included). The kernel is
``--kernel-python`` (default: this Python) with this checkout first on its path and
``D2LHELPERS_*`` passed on: Colab's kernel is ipykernel 6.17 with ipywidgets 7.7.1, which
``make classic-check`` takes from the Colab-like environment. Chromium is ``$CHROMIUM`` or
``chromium`` on the PATH, as for tests/test_book_browser.py. Screenshots go to
``_build/jupyterlab-check/<front end>/``. Exit status 1 when a check fails.

    python scripts/jupyterlab_check.py --jupyter /path/to/lab-env/bin/jupyter
    python scripts/jupyterlab_check.py --front-end classic --jupyter /path/to/nb6/bin/jupyter \
        --kernel-python .venv-colab/bin/python
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from d2lhelpers.book.fonts import FONT_PATH

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "_build" / "jupyterlab-check"
TOKEN = "d2lhelpers-check"
KERNEL = "d2lhelpers-check"
STOP_SECONDS = 15.0  # a click on 停止 ends the sweep within this (the batch in progress ends)
START_SECONDS = 600.0  # the notebook's first cell prepares the stand-in (cached after once)
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
CELLS = [
    """\
from d2lhelpers.book.photo_panel import PhotoPanel
from d2lhelpers.book.widgets import SweepPanel
from d2lhelpers.chapter import chapter_settings
from d2lhelpers.data import HOTDOG_CLASSES
from d2lhelpers.models import make_target_model
from d2lhelpers.sweep import Sweeper
from d2lhelpers.workspace import prepare

ws = prepare()
sweeper = Sweeper(ws, batch_size=chapter_settings(ws.kind)["batch_size"])""",
    """\
panel = SweepPanel(sweeper, epochs=10)
panel.multipliers.value = (1, 10)
panel""",
    """\
net = make_target_model(ws.source_model(), len(HOTDOG_CLASSES)).eval()
PhotoPanel(net, ws.recipe, HOTDOG_CLASSES)""",
]


class Checks:
    """Each check's outcome, printed as it is made."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failed.append(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(folder: Path) -> Path:
    cells = [
        {
            "cell_type": "code",
            "id": f"cell-{i}",
            "metadata": {},
            "source": src,
            "outputs": [],
            "execution_count": None,
        }
        for i, src in enumerate(CELLS)
    ]
    spec = {"name": KERNEL, "display_name": "d2lhelpers check", "language": "python"}
    notebook = {"cells": cells, "metadata": {"kernelspec": spec}, "nbformat": 4,
                "nbformat_minor": 5}  # fmt: skip
    path = folder / "check.ipynb"
    path.write_text(json.dumps(notebook))
    return path


def write_kernel(data_dir: Path, python: str = sys.executable) -> None:
    """A kernelspec that runs ``python`` with this checkout first on its path."""
    env = {k: v for k, v in os.environ.items() if k.startswith("D2LHELPERS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "d2lhelpers check", "language": "python", "env": env,
    }  # fmt: skip
    folder = data_dir / "kernels" / KERNEL
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps(spec))


def server_command(jupyter: str, front_end: str, port: int, folder: Path) -> list[str]:
    """The command that serves ``folder`` on 127.0.0.1:``port`` with ``front_end``."""
    common = ["--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1"]
    if front_end == "lab":
        return [jupyter, "lab", *common, f"--ServerApp.token={TOKEN}",
                f"--ServerApp.root_dir={folder}",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]  # fmt: skip
    return [jupyter, "notebook", *common, f"--NotebookApp.token={TOKEN}",
            f"--NotebookApp.notebook_dir={folder}"]  # fmt: skip


def notebook_url(base: str, front_end: str) -> str:
    path = "lab/tree" if front_end == "lab" else "notebooks"
    return f"{base}/{path}/check.ipynb?token={TOKEN}"


@contextmanager
def jupyter_server(jupyter: str, front_end: str, kernel_python: str, folder: Path) -> Iterator[str]:
    """The front end serving ``folder`` on 127.0.0.1; yields its base URL."""
    port = free_port()
    env = {**os.environ, "JUPYTER_DATA_DIR": str(folder / "data"),
           "JUPYTER_CONFIG_DIR": str(folder / "config"),
           "JUPYTER_RUNTIME_DIR": str(folder / "runtime")}  # fmt: skip
    write_kernel(folder / "data", kernel_python)
    command = server_command(jupyter, front_end, port, folder)
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(base, server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def wait_for_server(base: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"The Jupyter server exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"The Jupyter server did not answer within {seconds:.0f} s")


def add_font(page: Page) -> None:
    """The package's Chinese font for the page's text, so that the screenshots are readable
    on a machine without a CJK font (the book ships it the same way). Added as each page
    loads, before anything is drawn: text drawn before the font arrives kept its empty boxes."""
    data = base64.b64encode(FONT_PATH.read_bytes()).decode()
    sans, mono = "system-ui, sans-serif, D2lhelpersSC", "monospace, D2lhelpersSC"
    css = (
        f"@font-face {{font-family: D2lhelpersSC; src: url(data:font/otf;base64,{data})}}"
        # JupyterLab's fonts are variables; the widgets' labels set theirs in narrower rules
        # (the icons, <i>, keep Font Awesome)
        f" :root {{--jp-ui-font-family: {sans}; --jp-content-font-family: {sans};"
        f" --jp-widgets-font-family: {sans}; --jp-code-font-family: {mono}}}"
        f" body, .jupyter-widgets, .jupyter-widgets :not(i) {{font-family: {sans} !important}}"
        f" .CodeMirror, .cm-content, pre, code {{font-family: {mono}}}"
    )
    page.add_init_script(
        "document.addEventListener('DOMContentLoaded', () => {"
        " const style = document.createElement('style');"
        f" style.textContent = {json.dumps(css)}; document.head.appendChild(style); }})"
    )


def button(page: Page, text: str):
    return page.locator("button.jupyter-button", has_text=re.compile(f"^\\s*{text}\\s*$"))


def wait_text(page: Page, pattern: str, seconds: float) -> bool:
    """Wait until some element's text matches ``pattern``; False after ``seconds``."""
    try:
        page.get_by_text(re.compile(pattern)).first.wait_for(timeout=seconds * 1000)
    except PlaywrightTimeout:
        return False
    return True


def run_all(page: Page, url: str, front_end: str) -> None:
    """Open the notebook and run every cell, through the front end's own menu or API."""
    page.goto(url)
    if front_end == "classic":
        page.wait_for_function(
            "() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel"
            " && Jupyter.notebook.kernel.is_connected()",
            timeout=120_000,
        )
        page.evaluate("() => Jupyter.notebook.execute_all_cells()")
        return
    page.locator(".jp-Notebook").wait_for(timeout=120_000)
    idle = page.get_by_text("Kernel status: Idle").first  # for screen readers: not visible
    idle.wait_for(state="attached", timeout=120_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()


def save(page: Page, front_end: str) -> None:
    """Save the notebook (its widget state included), so that a reload shows the panels."""
    if front_end == "classic":
        page.evaluate("() => Jupyter.notebook.save_notebook()")
        page.wait_for_function("() => !Jupyter.notebook.dirty", timeout=30_000)
        return
    page.keyboard.press("Control+s")
    page.locator(".jp-mod-dirty").wait_for(state="detached", timeout=30_000)


def sweep_and_stop(page: Page, checks: Checks, name: str, shots: Path) -> None:
    """运行, then 停止 once a batch has trained: 已停止 within STOP_SECONDS, 运行 usable."""
    button(page, "运行").click()
    started = wait_text(page, "^正在训练", 120)  # the last sweep's texts replaced
    started = started and wait_text(page, r"第 1/2 次运行：批量 \d+/\d+", 120)
    checks.check(started, f"{name}: 运行 started a sweep (per-batch progress shows)")
    clicked = time.monotonic()
    button(page, "停止").click()
    stopped = wait_text(page, r"^已停止：2 次运行中完成 0 次", STOP_SECONDS)
    seconds = time.monotonic() - clicked
    checks.check(stopped, f"{name}: 停止 ended the sweep ({seconds:.1f} s after the click)")
    checks.check(button(page, "运行").is_enabled(), f"{name}: 运行 is usable again")
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def upload(page: Page, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("button.widget-upload").click()
    chooser.value.set_files(str(path))


RESULT_JS = "[...document.querySelectorAll('.widget-html')].find(e => /预测：/.test(e.innerText))"
WATCH_JS = (  # count the changes of the prediction's element from now on
    f"() => {{ window.changes = 0; new MutationObserver(() => window.changes++).observe("
    f"{RESULT_JS}, {{subtree: true, childList: true, characterData: true}}); }}"
)


BAD_TITLES_JS = (  # the text of each visible widget element whose tooltip names a missing value
    "() => [...document.querySelectorAll('.jupyter-widgets [title]')].filter(e =>"
    " e.checkVisibility() && ['null', 'undefined'].includes(e.title)).map(e => e.innerText)"
)


def photo_panel(page: Page, checks: Checks, folder: Path, shots: Path) -> None:
    """An upload, the same file again, a quoted path; the photo's size, the tooltips."""
    photo = folder / "photo.jpg"
    Image.new("RGB", (61, 76), (200, 60, 40)).save(photo)
    title = page.locator("button.widget-upload").get_attribute("title")
    checks.check(title not in (None, "", "null", "undefined"), f"upload tooltip: {title!r}")
    bad = page.evaluate(BAD_TITLES_JS)
    checks.check(not bad, f"no widget's tooltip reads null or undefined {bad}")
    upload(page, photo)
    checks.check(wait_text(page, "^预测：", 30), "an upload is classified")
    image, result = page.locator(".widget-image").last, page.get_by_text(re.compile("^预测："))
    image.scroll_into_view_if_needed()
    box, seen = image.bounding_box() or {}, result.bounding_box() or {}
    checks.check(0 < box.get("width", 0) <= 320, f"the photo drawn at {box}")
    bottom = seen.get("y", -1) + seen.get("height", 0)
    in_view = seen.get("y", -1) >= 0 and bottom <= page.viewport_size["height"]
    checks.check(in_view, f"the prediction in view with the photo ({seen})")
    for again in (lambda: upload(page, photo), lambda: read_path(page, f'"{photo}"')):
        page.evaluate(WATCH_JS)
        again()
        with contextlib.suppress(PlaywrightTimeout):  # the reading, then the prediction
            page.wait_for_function("window.changes >= 2", timeout=30_000)
        changes = page.evaluate("window.changes")
        checks.check(changes >= 2, f"the same photo again, then in quotes: shown anew ({changes})")
    page.screenshot(path=str(shots / "photo.png"), full_page=True)


def read_path(page: Page, text: str) -> None:
    page.locator(".widget-text input").last.fill(text)
    button(page, "识别").click()


def check_panels(page: Page, checks: Checks, front_end: str, url: str, folder: Path) -> None:
    """The notebook run; three sweeps stopped (the third after a reload); the photo panel."""
    shots = SHOTS / front_end
    add_font(page)
    run_all(page, url, front_end)
    button(page, "运行").wait_for(timeout=START_SECONDS * 1000)
    sweep_and_stop(page, checks, "sweep-1", shots)
    sweep_and_stop(page, checks, "sweep-2", shots)
    save(page, front_end)
    page.reload()
    button(page, "运行").wait_for(timeout=120_000)
    sweep_and_stop(page, checks, "sweep-3-after-reload", shots)
    photo_panel(page, checks, folder, shots)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--front-end", choices=("lab", "classic"), default="lab")
    parser.add_argument(
        "--jupyter", default=shutil.which("jupyter"), help="the front end's jupyter"
    )
    parser.add_argument("--kernel-python", default=sys.executable, help="the kernel's Python")
    args = parser.parse_args()
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not args.jupyter or not chromium:
        raise SystemExit(
            "needs a Jupyter front end (--jupyter) and Chromium ($CHROMIUM or chromium)"
        )
    (SHOTS / args.front_end).mkdir(parents=True, exist_ok=True)
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="d2lhelpers-lab-") as tmp:
        folder = Path(tmp)
        write_notebook(folder)
        # absolute: the kernel starts in the notebook's folder (not resolved: a venv's python
        # is a symlink to the base interpreter)
        kernel_python = os.path.abspath(args.kernel_python)
        server = jupyter_server(args.jupyter, args.front_end, kernel_python, folder)
        with server as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            try:
                url = notebook_url(base, args.front_end)
                check_panels(page, checks, args.front_end, url, folder)
            finally:
                page.screenshot(path=str(SHOTS / args.front_end / "last.png"), full_page=True)
                browser.close()
        print(f"console errors: {len(errors)}", *errors[:10], sep="\n  ")
    print(f"{len(checks.failed)} check(s) failed" if checks.failed else "every check held")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
