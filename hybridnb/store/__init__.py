"""Storage: the append-only ledger of every call and the answer cache shared by kernels."""
