"""Encoding matplotlib figures as png, pdf or svg bytes, reproducibly: fixed metadata (no creation dates), and text
kept as text in vector files (editable in a vector editor, searchable in a PDF).

The callers write the bytes atomically (utils.runs.io.write_bytes_atomic), so a file is never half written.
"""
from __future__ import annotations

import io

from matplotlib.figure import Figure

FORMATS = ("png", "pdf", "svg")  # utils.settings.IMAGE_FORMATS: the --format choices
# Glyphs as text (svg) and TrueType (pdf), not paths; a fixed salt for svg's element ids (uuid4 by default).
VECTOR_TEXT = {"svg.fonttype": "none", "pdf.fonttype": 42, "svg.hashsalt": "deep_rl_regions"}


def figure_bytes(fig: Figure, fmt: str = "png", *, producer: str = "deep_rl_regions", dpi: float | None = None,
                 rc: dict | None = None) -> bytes:
    """The figure encoded as png, pdf or svg at its own size; `dpi` (default: the figure's) sets png's resolution."""
    import matplotlib as mpl

    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; expected one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    with mpl.rc_context({**(rc or {}), **VECTOR_TEXT}):
        fig.savefig(buf, format=fmt, dpi=dpi or fig.dpi, metadata=_metadata(fmt, producer))
    return buf.getvalue()


def _metadata(fmt: str, producer: str) -> dict:
    # Without these, pdf and svg carry the creation date, so two renders of the same data would differ.
    if fmt == "png":
        return {"Software": producer}
    if fmt == "pdf":
        return {"Creator": producer, "CreationDate": None}
    return {"Creator": producer, "Date": None}
