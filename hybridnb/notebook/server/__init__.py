"""Jupyter server extension and prebuilt JupyterLab extension of hybridnb.

``hybridnb/__init__.py`` re-exports the two ``_jupyter_*`` hooks; the server
extension is also enabled directly as ``hybridnb.notebook.server`` by the config file
``jupyter-config/server-config/hybridnb.json`` that the wheel installs.
"""

from __future__ import annotations


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "hybridnb"}]


def _jupyter_server_extension_points():
    return [{"module": "hybridnb.notebook.server"}]


def _load_jupyter_server_extension(server_app):
    """Register ``/hybridnb/summary`` and ``/hybridnb/summary.md``."""
    from ._handlers import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("hybridnb: registered /hybridnb/summary")
