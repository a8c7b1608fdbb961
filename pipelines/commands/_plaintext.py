"""Docstring text (reStructuredText inline markup) as plain terminal text.

Rule summaries come from docstrings written for Sphinx; a terminal shows them without the
markup: roles (``:math:`\\theta```, ``:class:`~wiring.rules.dso.DSO```), inline literals,
interpreted text, emphasis and hyperlink references keep only their text, and a few LaTeX
commands common in rule formulas become their Unicode symbols.
"""

from __future__ import annotations

import re

__all__ = ["plain_text"]

#: LaTeX commands of :math: roles shown as Unicode (Greek letters and a few operators).
_LATEX: dict[str, str] = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ",
    "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "φ", "chi": "χ", "psi": "ψ",
    "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Sigma": "Σ",
    "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω", "cdot": "·", "times": "×", "le": "≤", "leq": "≤",
    "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠", "approx": "≈", "sim": "~", "propto": "∝",
    "infty": "∞", "sum": "Σ", "prod": "Π", "to": "→", "in": "∈", "exp": "exp", "log": "log",
}

_ROLE = re.compile(r":(?:[\w-]+:)*[\w-]+:`([^`]+)`")
_LITERAL = re.compile(r"``(.+?)``")
_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]+>`__?")
_INTERPRETED = re.compile(r"`([^`]+)`_{0,2}")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_LATEX_COMMAND = re.compile(r"\\([A-Za-z]+)")


def _role(match: re.Match[str]) -> str:
    role = match.group(0).split("`", 1)[0]
    body = match.group(1)
    if role == ":math:":
        return _math(body)
    title = re.fullmatch(r"(.+?)\s*<[^<>]+>", body)  # :ref:`title <target>`
    if title:
        return title.group(1)
    body = body.lstrip("!")
    if body.startswith("~"):  # :func:`~pkg.mod.name` shows ``name``
        return body[1:].rsplit(".", 1)[-1]
    return body


def _math(body: str) -> str:
    text = _LATEX_COMMAND.sub(lambda m: _LATEX.get(m.group(1), m.group(1)), body)
    text = re.sub(r"\\[,;:! ]", " ", text)  # LaTeX spacing commands
    return text.replace("{", "").replace("}", "")


def plain_text(text: str) -> str:
    """``text`` without reST inline markup.

    >>> plain_text(r"Connect iff :math:`n_{shared} \\ge \\theta` (``peters_neuron``).")
    'Connect iff n_shared ≥ θ (peters_neuron).'
    >>> plain_text(":class:`~wiring.rules.dso.DSO` times *one* **factor**, see `SBI <https://x.org>`_")
    'DSO times one factor, see SBI'
    """
    out = _ROLE.sub(_role, text)
    out = _LITERAL.sub(r"\1", out)
    out = _LINK.sub(r"\1", out)
    out = _INTERPRETED.sub(r"\1", out)
    out = _STRONG.sub(r"\1", out)
    return _EMPHASIS.sub(r"\1", out)
