"""Secrets never shown: credentials and secret query values masked in URLs (config output, reprs)."""

from __future__ import annotations

import re
from typing import Any

_SECRET_PARAM = re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token|password|secret|sig)=)[^&#]*")


def mask_url(url: Any) -> Any:
    """``url`` with a password (``user:pw@``) and secret query values replaced by ``***``."""
    if not isinstance(url, str) or not url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    try:
        p = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = p.netloc
    if "@" in netloc:
        cred, host = netloc.rsplit("@", 1)
        user = cred.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in cred else f"***@{host}"
    return _SECRET_PARAM.sub(r"\1***", urlunsplit((p.scheme, netloc, p.path, p.query, p.fragment)))
