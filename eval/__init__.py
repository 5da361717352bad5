"""Evaluation entry points (``python -m eval.<name> --workdir=...``): thin CLIs over ``iss_jax`` functions.

Each writes ``<out>/<name>.md`` (Markdown table), ``<out>/<name>.json`` and ``<out>/<name>.png``.
"""
