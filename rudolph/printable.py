"""Text that came from outside (keys, metadata, OCR text, other services' errors), made safe to
show: every character a terminal or log reader would act on, rather than display, is written as
a visible escape.

An ESC byte becomes the four characters `\\x1b`: the operator sees the escape, the terminal
never receives it. Markup is a separate matter: rudolph's consoles never parse any (see
`rudolph.console`).
"""

from __future__ import annotations

import unicodedata

# Unicode's bidirectional controls reorder what follows them on screen ("Trojan source"), and
# the line and paragraph separators break a line in some viewers: both can forge what a line
# appears to say.
_INVISIBLE_FORMAT = (
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0 controls, DEL and the C1 controls (U+0080-U+009F: 8-bit CSI is an escape sequence too).
_TABLE: dict[int, str] = {
    code: _escape(chr(code)) for code in range(0xA0) if unicodedata.category(chr(code)) == "Cc"
}
_TABLE.update({ord(char): _escape(char) for char in _INVISIBLE_FORMAT})


def printable(value: object) -> str:
    """`value` as one line of text with every control character escaped (`\\x1b`, `\\n`
    becomes `\\x0a`...), so it can be printed to a terminal or a log as it is."""
    return str(value).translate(_TABLE)


# What json.dumps(..., ensure_ascii=False) leaves raw although a terminal acts on it (JSON
# escapes only U+0000-U+001F): as \\uXXXX, the JSON stays valid and means the same.
_JSON_TABLE = {code: f"\\u{code:04x}" for code in _TABLE if code >= 0x7F}


def printable_json(dumped: str) -> str:
    """JSON text (from `json.dumps`) with DEL, the C1 controls and the bidirectional controls
    escaped too, so printing it cannot act on a terminal."""
    return dumped.translate(_JSON_TABLE)
