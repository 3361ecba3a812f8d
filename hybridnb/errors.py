"""Errors raised by hybridnb.

Every error the library raises on purpose derives from :class:`HybridnbError`::

    HybridnbError
    ├── ConfigError            bad or missing settings (e.g. no API key)
    ├── TemplateError          a ``{name}`` in a prompt could not be filled
    ├── BudgetExceeded         a call or batch would pass the budget; nothing was sent
    ├── PricingError           a price override is malformed
    ├── LedgerError            the ledger could not be written or read
    ├── CacheError             the answer cache is damaged (``%hybridnb cache clear`` starts a new one)
    ├── InvalidRequest         one row cannot be sent (text that is not Unicode, over the context window)
    ├── BackendError           a backend failed to answer
    │   ├── BackendUnavailable     server unreachable, model file missing, extra not installed
    │   ├── AuthenticationError    HTTP 401/403
    │   ├── NotFoundError          HTTP 404 (unknown model or path)
    │   ├── RateLimited            HTTP 429 after retries
    │   ├── ServerError            HTTP 5xx after retries
    │   ├── BackendTimeout         no answer within the timeout
    │   ├── MalformedResponse      the server answered something that is not a completion
    │   └── InvalidAnswer          the answer broke a constraint (``--choices``, JSON schema)
    ├── CorpusError            corpus workflow input is invalid (shares file, empty corpus, old DB)
    └── MissingExtra           an optional extra is not installed (the message names the pip command)
"""

from __future__ import annotations


class HybridnbError(Exception):
    """Root of every error hybridnb raises on purpose."""


class ConfigError(HybridnbError):
    """A setting is missing or invalid."""


class TemplateError(HybridnbError):
    """A prompt template could not be rendered."""


class BudgetExceeded(HybridnbError):
    """The call or batch would exceed the budget; nothing was sent."""


class PricingError(HybridnbError):
    """A price override is malformed."""


class LedgerError(HybridnbError):
    """The ledger could not be written or read."""


class CacheError(HybridnbError):
    """The answer cache cannot be read or written (e.g. a damaged cache.sqlite)."""


class InvalidRequest(HybridnbError):
    """One request cannot be sent; nothing was sent for it."""


class BackendError(HybridnbError):
    """A backend failed to produce an answer."""

    #: whether the provider may have charged for the failed call
    billed: bool = False


class BackendUnavailable(BackendError):
    """The backend cannot be reached or loaded."""


class AuthenticationError(BackendError):
    """The backend refused the credentials (HTTP 401/403)."""


class NotFoundError(BackendError):
    """The backend does not know the model or path (HTTP 404)."""


class RateLimited(BackendError):
    """The backend kept answering HTTP 429 after all retries."""


class ServerError(BackendError):
    """The backend kept failing with HTTP 5xx after all retries."""


class BackendTimeout(BackendError):
    """The backend did not answer in time."""


class MalformedResponse(BackendError):
    """The backend answered something that is not a valid completion."""

    billed = True


class InvalidAnswer(BackendError):
    """The answer broke a constraint such as ``--choices`` or a JSON schema."""

    billed = True


class CorpusError(HybridnbError):
    """Invalid input to the corpus workflow."""


class MissingExtra(HybridnbError, ImportError):
    """An optional extra (embedded, corpus, semantic, vllm, ray) is not installed."""
