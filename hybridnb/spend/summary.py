"""`%hybridnb summary`: spend by route/backend/model from the ledger (DuckDB)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..store import ledger as _ledger
from ..core.response import money


@dataclass
class Summary:
    """A ledger summary; renders as a Markdown table in notebooks."""

    table: Any  # polars DataFrame
    total_usd: float
    simulated_usd: float
    saved_usd: float
    calls: int
    cache_hits: int
    budget_usd: float | None
    session_spent: float

    @classmethod
    def build(cls, home: Path, *, where=None, budget_usd=None, session_spent=0.0) -> "Summary":
        t = _ledger.summarize(home, where)
        total = float(t["cost_usd"].sum()) if t.height else 0.0
        sim = float(t.filter(t["simulated"])["cost_usd"].sum()) if t.height else 0.0
        return cls(
            table=t, total_usd=total, simulated_usd=sim,
            saved_usd=float(t["saved_usd"].sum()) if t.height else 0.0,
            calls=int(t["calls"].sum()) if t.height else 0,
            cache_hits=int(t["cache_hits"].sum()) if t.height else 0,
            budget_usd=budget_usd, session_spent=session_spent,
        )

    def budget_line(self) -> str:
        if self.budget_usd is None:
            return "no budget set (`%hybridnb budget 5.00`)"
        left = self.budget_usd - self.session_spent
        return (f"budget {money(self.budget_usd)}: spent {money(self.session_spent)} this session, "
                f"{money(max(left, 0.0))} left")

    def rows(self) -> list[dict[str, Any]]:
        return self.table.to_dicts()

    def to_markdown(self) -> str:
        head = "| route | backend | model | calls | cache hits | tokens in/out | cost | saved | GPU-h |"
        lines = [head, "|" + "---|" * 9]
        for r in self.rows():
            model = r["model"]
            if r["simulated"]:
                model += f" (offline stand-in for {r['reference_model']})"
            cost = money(r["cost_usd"]) + (" simulated" if r["simulated"] else "")
            cost += " unpriced" if r["unpriced"] else ""
            lines.append(
                f"| {r['route']} | {r['backend']} | {model} | {r['calls']} | {r['cache_hits']} | "
                f"{r['input_tokens']:,}/{r['output_tokens']:,} | {cost} | {money(r['saved_usd'])} | "
                f"{r['gpu_hours']:.4f} |")
        return "\n".join(lines)

    def total_line(self) -> str:
        real = self.total_usd - self.simulated_usd
        return (f"Total {money(self.total_usd)} ({money(real)} billed, {money(self.simulated_usd)} simulated) · "
                f"{self.calls} calls · {self.cache_hits} cache hits saved {money(self.saved_usd)} · "
                f"{self.budget_line()}")

    def _repr_markdown_(self) -> str:
        from .report import prose_md

        table = self.to_markdown().replace("$", r"\$")  # one amount per table cell: safe from MathJax
        return f"{table}\n\n{prose_md(self.total_line())}"

    def __str__(self) -> str:
        return f"{self.to_markdown()}\n\n{self.total_line()}"
