"""One self-contained HTML page: images embedded as base64, no scripts, no network."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}img{max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
.warn{color:#a40000;font-weight:600}.note{color:#555}.wide{overflow-x:auto}"""


def image(path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table(df: pd.DataFrame) -> str:
    inner = df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", border=0)
    return f"<div class='wide'>{inner}</div>"


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """sections: (heading, inner HTML) in reading order."""
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{inner}" for h, inner in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>")


def para(text: str, cls: str = "") -> str:
    return f"<p class='{cls}'>{html.escape(text)}</p>" if cls else f"<p>{html.escape(text)}</p>"
