"""Sphinx extension: each page lists every script once.

With Sphinx 7.4 and the extensions Jupyter Book 1 loads, inline scripts that extensions add
during the build (sphinx-thebe's ``const THEBE_JS_URL = ...``, sphinx-togglebutton's selector)
end up twice in every page, once with the file name ``None`` and once with ``""``, so Sphinx's
own check for repeats misses them; the second ``const`` declaration is a JavaScript error in
the console of every reader. This drops repeated entries, keeping the first of each.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def drop_repeated_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
