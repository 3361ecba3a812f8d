"""What a corpus run returns (its own module so the report stage and the workflow do not import each other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl


@dataclass
class Result:
    """What a run produced: figures, tables and where the report is."""

    db: Path
    report: Path
    timings: dict[str, float]
    quality: dict[str, float]
    ranking: pl.DataFrame
    costs: pl.DataFrame
    resumed: list[str] = field(default_factory=list)
    secondary: pl.DataFrame | None = None

    @property
    def report_path(self) -> Path:
        return self.report

    def __getitem__(self, key):  # dict-style access for the CLI
        return getattr(self, key)

    def _repr_markdown_(self) -> str:
        return self.report.read_text(encoding="utf-8")
