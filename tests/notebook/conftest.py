"""A real IPython shell with hybridnb loaded, for the notebook-facing tests."""

import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell


@pytest.fixture
def ip(hybridnb_home):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "hybridnb")
    before = set(shell.user_ns)
    yield shell
    for name in set(shell.user_ns) - before:
        shell.user_ns.pop(name, None)


@pytest.fixture
def outputs(ip):
    """The display outputs of the test (data + metadata), captured from the real display publisher."""
    pub, ip.display_pub = ip.display_pub, CapturingDisplayPublisher()
    try:
        yield ip.display_pub.outputs
    finally:
        ip.display_pub = pub
