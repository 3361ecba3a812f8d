"""The fault-injecting OpenAI-protocol server, with %%reason pointed at it (see tests/faulty_server.py)."""

from faulty_server import _faulty, faulty  # noqa: F401 - pytest fixtures
