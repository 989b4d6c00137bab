"""Regenerate the Chinese font that d2lhelpers ships for its figures (d2lhelpers/book/fontdata/).

Source: Noto Sans CJK SC Regular 2.004 (SIL Open Font License 1.1), from the Debian package
fonts-noto-cjk (``apt-get update && apt-get install -y fonts-noto-cjk``), face 2 of
/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc.

Kept: printable ASCII and Latin-1, general punctuation, every character of GB2312 (its 6,763
hanzi, full-width forms, CJK punctuation, Greek, Cyrillic, kana), and every non-ASCII character
of the package's source files (the figure and panel texts). Hinting is dropped (matplotlib
autohints). The subset is a Modified Version under the OFL, so it is renamed (see FAMILY) and
ships with the licence beside it.

    .venv/bin/python scripts/subset_cjk_font.py [--source PATH]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "d2lhelpers" / "book" / "fontdata"
SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
SOURCE_FAMILY = "Noto Sans CJK SC"
LICENCE_SOURCE = Path("/usr/share/doc/fonts-noto-cjk/copyright")
FAMILY = "D2lhelpers Sans SC"  # a Modified Version may not use the original's names
FILE_NAME = "D2lhelpersSansSC-Regular.otf"
COPYRIGHT = (
    "Copyright 2014-2021 Adobe (http://www.adobe.com/), with Reserved Font Name 'Source'.\n"
    "Noto is a trademark of Google Inc.\n"
    "Subset and renamed for d2lhelpers by scripts/subset_cjk_font.py from Noto Sans CJK SC 2.004.\n"
)
RANGES = ((0x20, 0x7E), (0xA0, 0xFF), (0x2000, 0x206F), (0x2212, 0x2212), (0x3000, 0x303F))


def gb2312() -> set[int]:
    """Every character that GB2312 encodes (rows 1-9 symbols, 16-87 hanzi)."""
    chars = set()
    for row in range(0xA1, 0xF8):
        for cell in range(0xA1, 0xFF):
            try:
                chars.add(ord(bytes((row, cell)).decode("gb2312")))
            except UnicodeDecodeError:
                continue
    return chars


def package_chars() -> set[int]:
    """Every non-ASCII character of the package's Python sources."""
    text = "".join(p.read_text("utf-8") for p in (ROOT / "d2lhelpers").glob("*.py"))
    return {ord(c) for c in text if ord(c) > 0x7E}


def wanted() -> set[int]:
    ranges = {c for low, high in RANGES for c in range(low, high + 1)}
    return ranges | gb2312() | package_chars()


def source_font(path: Path) -> TTFont:
    for font in TTCollection(str(path)).fonts:
        if font["name"].getDebugName(1) == SOURCE_FAMILY:
            return font
    raise SystemExit(f"no face named {SOURCE_FAMILY!r} in {path}")


def rename(font: TTFont) -> None:
    """New family and PostScript names; the copyright notice says where it came from."""
    postscript = FILE_NAME.removesuffix(".otf")
    names = {
        0: COPYRIGHT.splitlines()[0], 1: FAMILY, 3: f"2.004;d2lhelpers;{postscript}",
        4: FAMILY, 6: postscript, 16: FAMILY,
    }  # fmt: skip
    table = font["name"]
    table.names = [r for r in table.names if r.nameID not in (16, 17)]
    for name_id, text in names.items():
        table.setName(text, name_id, 3, 1, 0x409)
        table.setName(text, name_id, 1, 0, 0)
    table.names = [r for r in table.names if not (r.platformID == 3 and r.langID != 0x409)]
    font["CFF "].cff.fontNames = [postscript]


def subset_font(font: TTFont, chars: set[int]) -> None:
    options = subset.Options()
    options.hinting = False
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=chars)
    subsetter.subset(font)


def licence_text(path: Path) -> str:
    """The OFL 1.1 text of the Debian copyright file, unwrapped from its stanza format."""
    stanza = path.read_text("utf-8").split("License: SIL-1.1\n", 2)[2]
    lines = stanza.split("\n\nLicense:", 1)[0].splitlines()
    return "\n".join("" if line == " ." else re.sub(r"^ ", "", line) for line in lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--licence", type=Path, default=LICENCE_SOURCE)
    args = parser.parse_args()
    font = source_font(args.source)
    chars = wanted()
    subset_font(font, chars)
    rename(font)
    OUT_DIR.mkdir(exist_ok=True)
    out = OUT_DIR / FILE_NAME
    font.save(out)
    (OUT_DIR / "OFL.txt").write_text(COPYRIGHT + "\n" + licence_text(args.licence), "utf-8")
    covered = len(set(font.getBestCmap()))
    print(
        f"{out.relative_to(ROOT)}: {covered} of {len(chars)} characters, {out.stat().st_size:,} B"
    )


if __name__ == "__main__":
    main()
