"""The write path: one call in, an answer and its ledger rows out (dispatcher, targets, records, constraints, pricing, held-time clock, event loop)."""
