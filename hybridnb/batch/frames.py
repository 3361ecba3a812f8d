"""Batch input and output: polars, pandas, DuckDB relations and tables.

A batch reads rows from what the user has and hands back the same kind of
frame with result columns added: polars in → polars out, pandas in → pandas
out (index kept), a DuckDB relation or table → polars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import HybridnbError


class Frame:
    """The batch's input: its kind, its columns and its rows."""

    def __init__(self, data: Any, kind: str, name: str = "data"):
        self.data = data  # polars or pandas DataFrame
        self.kind = kind  # "polars" | "pandas"
        self.name = name

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.data.columns]

    def __len__(self) -> int:
        return len(self.data)

    def rows(self, cols: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Dicts of the named columns, one per row, in order."""
        if not cols:
            for _ in range(len(self.data)):
                yield {}
            return
        if self.kind == "polars":
            yield from self.data.select(list(cols)).iter_rows(named=True)
        else:
            sub = self.data[list(cols)]
            for values in sub.itertuples(index=False, name=None):
                yield dict(zip(cols, values))

    def with_columns(self, columns: dict[str, Any], keep: Sequence[bool] | None = None):
        """The input plus ``columns`` (name → values or a ready Series), only rows where ``keep``."""
        if self.kind == "polars":
            import polars as pl

            series = [v if isinstance(v, pl.Series) else pl.Series(k, v, strict=False)
                      for k, v in columns.items()]
            series = [s.alias(k) for k, s in zip(columns, series)]
            out = self.data.with_columns(series)
            if keep is not None:
                out = out.filter(pl.Series(list(keep), dtype=pl.Boolean))
            return out
        out = self.data.copy()
        for k, v in columns.items():
            out[k] = v
        if keep is not None:
            out = out[list(keep)]
        return out


def is_null(value: Any) -> bool:
    """None, NaN or pandas NA/NaT."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN
    except (TypeError, ValueError):
        return False


def load(data: Any, con: Any = None, name: str | None = None) -> Frame:
    """Wrap ``data`` (polars/pandas DataFrame, DuckDB relation, or table name + ``con``)."""
    kind = type(data).__module__.split(".", 1)[0]
    label = name or "data"
    if kind == "polars" and hasattr(data, "iter_rows"):
        return Frame(data, "polars", label)
    if kind == "pandas" and hasattr(data, "itertuples"):
        return Frame(data, "pandas", label)
    if kind in ("duckdb", "_duckdb") and hasattr(data, "pl"):
        return Frame(data.pl(), "polars", label)
    if isinstance(data, str):
        return Frame(read_table(data, con), "polars", name or data)
    if isinstance(data, (list, dict)):
        import polars as pl

        return Frame(pl.DataFrame(data), "polars", label)
    raise HybridnbError(f"cannot batch over a {type(data).__name__}: pass a polars or pandas DataFrame, "
                        "a DuckDB relation, or a DuckDB table name")


def read_table(name: str, con: Any = None):
    """A DuckDB table (or view) as polars, from ``con`` (a connection or a database path)."""
    import duckdb

    own = None
    if con is None:
        con = duckdb.default_connection() if callable(getattr(duckdb, "default_connection", None)) \
            else duckdb.default_connection
    elif isinstance(con, (str, Path)):
        path = Path(con).expanduser()
        if not path.exists():
            raise HybridnbError(f"no DuckDB database at {path}")
        own = con = duckdb.connect(str(path), read_only=True)
    try:
        return con.table(name).pl()
    except duckdb.Error as e:
        raise HybridnbError(f"no DuckDB table or view named {name!r} ({str(e).splitlines()[0]})") from None
    finally:
        if own is not None:
            own.close()


def find_table(name: str, namespace: dict[str, Any]) -> Any:
    """The DuckDB connection in ``namespace`` (or the default one) that has table ``name``."""
    import duckdb

    cons = [v for k, v in namespace.items()
            if not k.startswith("_") and isinstance(v, duckdb.DuckDBPyConnection)]
    default = duckdb.default_connection() if callable(getattr(duckdb, "default_connection", None)) \
        else duckdb.default_connection
    for con in [*cons, default]:
        try:
            con.table(name)
            return con
        except duckdb.Error:
            continue
    return None
