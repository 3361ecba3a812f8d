"""The read path: one spend report over the ledger, its renderings, advice, live signals and charts."""
