"""Copy the browser assets the book serves itself from node_modules into _vendor.

The rendered pages load require.js, the ipywidgets HTML manager and MathJax from the book's
own static files instead of public CDNs (see ``_config.yml``).  ``npm ci`` installs the pinned
packages (``package.json``, ``package-lock.json``); this script checks their versions and copies
what the pages load into a temporary folder that is then renamed to ``_vendor``, so an
interrupted run never leaves a half-filled folder behind.  Sphinx copies ``_vendor``'s contents
into the built book's ``_static`` (``html_static_path`` in ``_config.yml``).

Run from the repository root: ``python scripts/vendor_book_assets.py`` (``make assets`` does).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "node_modules"
TARGET = ROOT / "_vendor"

# Loaded after require.js and MathJax's configuration, before embed-amd.js and before MathJax
# itself (which Sphinx defers). The bundle's AMD modules look for their icon
# fonts next to the URL require.js gives them: "@jupyter-widgets/controls" (and base) in the
# folder of "@jupyter-widgets", ".../html-manager/dist/libembed-amd" in that folder's
# html-manager/dist. By default that folder is the page's own, where the fonts 404; this points
# it at the book's _static/@jupyter-widgets, which holds the fonts at both places.
SETUP_JS = """\
// Written by scripts/vendor_book_assets.py.
(function () {
  // Where embed-amd.js finds its icon fonts.
  var scope = new URL("../..", document.currentScript.src).href;
  window.__jupyter_widgets_assets_path__ = scope;
  require.config({ paths: { "@jupyter-widgets": scope.replace(/\\/$/, "") } });

  // The widgets typeset their labels through MathJax 2's MathJax.Hub.Queue, and the book runs
  // MathJax 3: keep a Hub on the MathJax object (the config now, MathJax itself once it has
  // started) that typesets through version 3, holding back labels that come before it is ready.
  var waiting = [];
  var hub = {
    Queue: function (job) {
      var element = job[2];
      if (window.MathJax.typesetPromise) window.MathJax.typesetPromise([element]);
      else waiting.push(element);
    },
  };
  var config = (window.MathJax = window.MathJax || {});
  config.Hub = hub;
  config.startup = config.startup || {};
  config.startup.ready = function () {
    window.MathJax.startup.defaultReady();
    window.MathJax.Hub = hub;
    window.MathJax.startup.promise.then(function () {
      if (waiting.length) window.MathJax.typesetPromise(waiting.splice(0));
    });
  };
})();
"""
FONT_SUFFIXES = {".woff2", ".woff", ".ttf", ".eot", ".svg"}


def pinned_versions() -> dict[str, str]:
    """The exact versions that ``package.json`` pins."""
    return json.loads((ROOT / "package.json").read_text())["devDependencies"]


def installed_version(package: str) -> str:
    """The version of ``package`` in node_modules, or a clear error when it is missing."""
    manifest = MODULES / package / "package.json"
    if not manifest.is_file():
        raise SystemExit(f"{manifest} not found: run `npm ci` in {ROOT} first (make assets).")
    return json.loads(manifest.read_text())["version"]


def check_versions() -> dict[str, str]:
    """Fail when node_modules does not hold exactly the pinned versions."""
    pins = pinned_versions()
    for package, wanted in pins.items():
        found = installed_version(package)
        if found != wanted:
            raise SystemExit(
                f"node_modules/{package} is {found}, package.json pins {wanted}: run `npm ci`."
            )
    return pins


def copy_assets(dest: Path) -> None:
    """Copy the three packages' served files into ``dest``."""
    (dest / "requirejs").mkdir(parents=True)
    shutil.copy2(MODULES / "requirejs" / "require.js", dest / "requirejs" / "require.js")

    # npm's layout, plus the fonts one level up: where the bundle looks for them (see SETUP_JS).
    scope = dest / "@jupyter-widgets"
    manager = scope / "html-manager" / "dist"
    manager.mkdir(parents=True)
    dist = MODULES / "@jupyter-widgets" / "html-manager" / "dist"
    shutil.copy2(dist / "embed-amd.js", manager / "embed-amd.js")
    (manager / "setup.js").write_text(SETUP_JS)
    for font in dist.iterdir():
        if font.suffix in FONT_SUFFIXES:
            shutil.copy2(font, manager / font.name)
            shutil.copy2(font, scope / font.name)

    shutil.copytree(MODULES / "mathjax" / "es5", dest / "mathjax")


def main() -> None:
    pins = check_versions()
    staging = Path(tempfile.mkdtemp(prefix=".vendor-", dir=TARGET.parent))
    try:
        copy_assets(staging)
        (staging / "versions.json").write_text(json.dumps(pins, indent=2) + "\n")
        staging.chmod(0o755)
        if TARGET.exists():
            shutil.rmtree(TARGET)
        staging.rename(TARGET)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(
        f"vendored {', '.join(f'{p} {v}' for p, v in pins.items())} into {TARGET}", file=sys.stderr
    )


if __name__ == "__main__":
    main()
