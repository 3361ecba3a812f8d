"""Bring your own corpus: files, frames and DB tables into real DuckDB files; bad input; export; CLI."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from hybridnb.cli import main
from hybridnb.corpus import _export, _sources, _store
from hybridnb.errors import CorpusError

N = _sources.MIN_SEGMENTS + 40


def tickets(n: int = N) -> pl.DataFrame:
    """A small ticket export: string ids, a channel, a date, a truth column with some noise."""
    topics = ["billing", "login", "shipping", None]
    return pl.DataFrame({
        "ticket_id": [f"T-{i:04d}" for i in range(n)],
        "body": [f"ticket {i} about {topics[i % 4] or 'nothing much'} please help" for i in range(n)],
        "channel": ["email" if i % 3 else "chat" for i in range(n)],
        "opened": [f"2024-03-{1 + i % 28:02d} 10:{i % 60:02d}:00" for i in range(n)],
        "label": [topics[i % 4] for i in range(n)],
    })


def write(df: pl.DataFrame, path) -> str:
    {".parquet": df.write_parquet, ".csv": df.write_csv, ".jsonl": df.write_ndjson}[path.suffix](path)
    return str(path)


def store(tmp_path, name="c.duckdb"):
    return _store.open_store(tmp_path / name)


def rows(con, table: str) -> int:
    found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchall()
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] if found[0][0] else 0


def put(path, data) -> str:
    """Write ``data`` (bytes or text) to ``path`` and return the path."""
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return str(path)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_load_a_file_with_metadata_and_truth(tmp_path, suffix):
    df = tickets().with_columns(pl.when(pl.int_range(pl.len()) % 50 == 7).then(pl.lit("   "))
                                .otherwise(pl.col("body")).alias("body"))
    path = write(df, tmp_path / f"t{suffix}")
    con = store(tmp_path)
    s = _sources.load(con, path=path, text="body", id="ticket_id", role="channel", time="opened", truth="label")
    skipped = sum(1 for i in range(N) if i % 50 == 7)
    assert (s.kind, s.n_rows, s.n_skipped, s.id_column, s.has_truth) == ("file", N - skipped, skipped,
                                                                          "ticket_id", True)
    seg = con.sql("SELECT * FROM segments ORDER BY segment_id").pl()
    assert seg["segment_id"].to_list() == list(range(N - skipped))
    assert seg["source_id"][7] == "T-0008"  # row 7 was whitespace: skipped, the rest move up
    assert seg["speaker_role"][0] == "chat" and seg["year"][0] == 2024
    assert seg["ts"][0].isoformat() == "2024-03-01T10:00:00"
    truth = con.sql("SELECT * FROM truth ORDER BY segment_id").pl()
    assert truth["true_primary"][:4].to_list() == ["billing", "login", "shipping", None]
    info = dict(con.execute("SELECT key, value FROM source_info").fetchall())
    assert info["n_skipped_empty"] == str(skipped) and info["text_column"] == "body"


def test_time_zones_become_utc(tmp_path):
    df = tickets().with_columns(opened=pl.lit("2024-06-01T10:00:00+02:00"))
    con = store(tmp_path)
    _sources.load(con, data=df, text="body", time="opened")
    aware = tickets().with_columns(opened=pl.datetime(2024, 6, 1, 10, time_zone="Europe/Paris"))
    con2 = store(tmp_path, "b.duckdb")
    _sources.load(con2, data=aware, text="body", time="opened")
    for c in (con, con2):
        assert str(c.execute("SELECT min(ts), max(ts) FROM segments").fetchall()[0][0]) == "2024-06-01 08:00:00"


def test_load_frames_and_a_db_table(tmp_path):
    con = store(tmp_path)
    s = _sources.load(con, data=tickets().to_pandas(), text="body")
    assert (s.kind, s.n_rows, s.id_column, s.has_truth) == ("frame", N, None, False)
    assert rows(con, "truth") == 0
    con2 = store(tmp_path, "t.duckdb")
    con2.register("incoming", tickets().to_arrow())
    con2.execute("CREATE TABLE my_tickets AS SELECT * FROM incoming")
    s2 = _sources.load(con2, table="my_tickets", text="body", id="ticket_id")
    assert (s2.kind, s2.n_rows) == ("table", N)
    with pytest.raises(CorpusError, match=r"no table 'nope' in the DB; tables there: .*my_tickets"):
        _sources.load(con2, table="nope")


def test_generator_is_one_source_with_truth(tmp_path):
    con = store(tmp_path)
    s = _sources.load(con, n=1_000, seed=4, progress=False)
    assert (s.kind, s.n_rows, s.has_truth, s.id_column) == ("generator", 1_000, True, "segment_id")
    noise = con.execute("SELECT count(*) FROM truth WHERE true_primary IS NULL").fetchall()[0][0]
    assert 100 < noise < 300  # the generator's noise label becomes NULL (off-topic)
    assert "noise" not in {r[0] for r in con.execute("SELECT DISTINCT true_primary FROM truth").fetchall()}
    cols = [r[0] for r in con.execute("DESCRIBE segments").fetchall()]
    assert "true_primary" not in cols and "is_noise" not in cols  # the analysis sees texts only


def test_same_source_resumes_and_another_is_refused(tmp_path):
    path = write(tickets(), tmp_path / "t.csv")
    con = store(tmp_path)
    first = _sources.load(con, path=path, text="body", id="ticket_id")
    con.execute("INSERT INTO results VALUES ('marker', 1, '')")
    assert _sources.load(con, path=path, text="body", id="ticket_id") == first
    with pytest.raises(CorpusError, match="already holds another corpus"):
        _sources.load(con, path=path, text="channel", id="ticket_id")  # same file, another text column
    other = write(tickets(N + 5), tmp_path / "u.csv")
    with pytest.raises(CorpusError, match="already holds another corpus"):
        _sources.load(con, path=other, text="body")
    assert rows(con, "segments") == N


BAD = [
    (lambda p: str(p / "missing.csv"), {}, r"input file not found: .*missing\.csv"),
    (lambda p: (p / "dir.csv").mkdir() or str(p / "dir.csv"), {}, r"input is not a file"),
    (lambda p: put(p / "x.xlsx", "x"), {}, r"use a \.parquet, \.csv"),
    (lambda p: put(p / "e.csv", ""), {}, r"input file is empty"),
    (lambda p: put(p / "c.parquet", b"PAR1 not really"), {},
     r"cannot read .*c\.parquet as parquet"),
    (lambda p: put(p / "j.jsonl", '{"text": "a"}\n{"text": "b"\n'), {}, r"as jsonl: line 2 is not valid JSON"),
    (lambda p: write(tickets(), p / "t.csv"), {"text": "text"},
     r"no text column 'text' in .*t\.csv; its columns are: 'ticket_id', 'body', 'channel'"),
    (lambda p: write(tickets(), p / "t.csv"), {"text": "body", "truth": "answer"}, r"no truth column 'answer'"),
    (lambda p: put(p / "semi.csv", "id;text\n1;hello\n"), {}, r"looks ';'-separated"),
    (lambda p: put(p / "b.csv", b"id,text\n1,fine\n2,caf\xe9 au lait\n"), {},
     r"is not UTF-8: byte 0xe9 on line 3"),
    (lambda p: write(tickets().with_columns(ticket_id=pl.col("ticket_id").str.slice(0, 5)), p / "d.parquet"),
     {"text": "body", "id": "ticket_id"}, r"duplicate ids \(first: 'T-000' on rows 1 and 2\)"),
    (lambda p: write(tickets(_sources.MIN_SEGMENTS - 1), p / "s.jsonl"), {"text": "body"},
     rf"has {_sources.MIN_SEGMENTS - 1} non-empty texts .*at least {_sources.MIN_SEGMENTS}"),
    (lambda p: write(tickets(), p / "t.csv"), {"text": "body", "time": "channel"},
     r"time column 'channel' .*not dates or timestamps \(first: 'chat'\)"),
    (lambda p: write(tickets().with_row_index("n"), p / "t.parquet"), {"text": "n"}, r"holds .*, not text"),
]


@pytest.mark.parametrize("make, kw, message", BAD)
def test_bad_input_is_one_clear_error_and_nothing_is_written(tmp_path, make, kw, message):
    path = make(tmp_path)
    con = store(tmp_path)
    with pytest.raises(CorpusError, match=message) as err:
        _sources.load(con, path=path, **kw)
    assert "\n" not in str(err.value)
    assert rows(con, "segments") == 0 and rows(con, "source_info") == 0
    good = write(tickets(), tmp_path / "good.parquet")  # the same DB then loads a good file
    assert _sources.load(con, path=good, text="body").n_rows == N


def test_a_failure_inside_the_write_leaves_nothing_half_written(tmp_path):
    con = store(tmp_path)
    con.execute("DROP TABLE truth")
    con.execute("CREATE TABLE truth (segment_id BIGINT, true_primary INTEGER, true_secondary VARCHAR)")
    with pytest.raises(duckdb.Error):  # segments go in first, then truth fails to take strings
        _sources.load(con, data=tickets(), text="body", truth="label")
    assert rows(con, "segments") == 0 and rows(con, "source_info") == 0


def _with_final_labels(con, n: int):
    con.execute(f"""INSERT INTO final_labels (segment_id, primary_label, secondary_label, confidence)
        SELECT i, CASE WHEN i % 4 = 3 THEN NULL ELSE 'cat' || (i % 4) END,
        CASE WHEN i % 2 = 0 THEN 'cost' END, 0.5 + (i % 5) / 10 FROM range({n}) t(i)""")


@pytest.mark.parametrize("ids, out", [("ticket_id", "labels.parquet"), (None, "labels.csv"),
                                      ("num", "labels.jsonl")])
def test_export_keys_labels_by_the_input_id_column(tmp_path, ids, out):
    df = tickets().with_columns(num=pl.int_range(1000, 1000 + N))
    con = store(tmp_path)
    df = df.with_columns(body=pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("")).otherwise("body"))
    _sources.load(con, data=df, text="body", id=ids)
    _with_final_labels(con, N - 1)
    con.close()
    assert main(["corpus", "export", "--db", str(tmp_path / "c.duckdb"), "--labels", str(tmp_path / out)]) == 0
    got = {".parquet": pl.read_parquet, ".csv": pl.read_csv, ".jsonl": pl.read_ndjson}[
        (tmp_path / out).suffix](tmp_path / out)
    key = ids or _export.ROW_COLUMN
    assert got.columns == [key, "primary", "secondary", "confidence"]
    assert got.height == N - 1
    want_id = {"ticket_id": "T-0004", None: 4, "num": 1004}[ids]  # row 3 had no text: skipped
    assert got[key][3] == want_id
    assert got["secondary"][1] is None and got["secondary"][0] == "cost"
    assert got["primary"][3] is None  # off-topic


def test_csv_ids_keep_their_leading_zeros_in_the_export(tmp_path):
    df = tickets().with_columns(ticket_id=pl.format("00{}", pl.int_range(pl.len())))
    con = store(tmp_path)
    _sources.load(con, path=write(df, tmp_path / "t.csv"), text="body", id="ticket_id")
    _with_final_labels(con, N)
    got = _export.labels_frame(con)
    assert got["ticket_id"][:2].to_list() == ["000", "001"]


def test_export_before_a_run_is_one_clear_error(tmp_path, capsys):
    _store.open_store(tmp_path / "c.duckdb").close()
    assert main(["corpus", "export", "--db", str(tmp_path / "c.duckdb"), "--labels",
                 str(tmp_path / "l.parquet")]) == 2
    assert "no final labels yet" in capsys.readouterr().err
    assert not (tmp_path / "l.parquet").exists()


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_cli_generate_writes_texts_and_truth_that_load_back(tmp_path, suffix):
    out = tmp_path / f"gen{suffix}"
    assert main(["corpus", "generate", "--n", "400", "--seed", "2", "--out", str(out)]) == 0
    df = {".parquet": pl.read_parquet, ".csv": pl.read_csv, ".jsonl": pl.read_ndjson}[suffix](out)
    assert df.height == 400 and {"text", "true_primary", "true_secondary", "segment_id"} <= set(df.columns)
    con = store(tmp_path)
    s = _sources.load(con, path=str(out), id="segment_id", role="speaker_role", time="ts", truth="true_primary")
    assert s.n_rows == 400 and s.has_truth
    assert rows(con, "truth") == 400
    assert con.execute("SELECT count(true_secondary) FROM truth").fetchall()[0][0] > 0  # found by name


def test_cli_run_refuses_generator_options_with_an_input(tmp_path, capsys):
    assert main(["corpus", "run", "--input", "x.csv", "--n", "5000", "--db", str(tmp_path / "c.duckdb")]) == 2
    assert "--n and --shares are for the generator" in capsys.readouterr().err
    assert main(["corpus", "run", "--truth", "label", "--db", str(tmp_path / "c.duckdb")]) == 2
    assert "name columns of --input or --table" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["intents.csv", "intents.jsonl"])
def test_the_hand_written_intent_corpus_loads_with_its_answer_key(tmp_path, name):
    from pathlib import Path

    path = Path(__file__).parent / "data" / name
    con = store(tmp_path)
    s = _sources.load(con, path=str(path), text="message", id="ticket_id", role="channel", time="created",
                      truth="intent")
    assert (s.n_skipped, s.n_rows, s.has_truth) == (3, 637, True)  # three blank messages
    got = dict(con.execute("""SELECT coalesce(true_primary, '(off-topic)'), count(*) FROM truth
                              GROUP BY 1""").fetchall())
    assert max(got, key=got.get) == "connection_drops" and got["(off-topic)"] > 10
    second = dict(con.execute("""SELECT true_secondary, count(*) FROM truth WHERE true_secondary IS NOT NULL
                                 GROUP BY 1""").fetchall())  # intent_secondary found by name
    assert max(second, key=second.get) == "bill_dispute"


def test_cli_runs_a_brought_corpus_end_to_end_and_exports_its_labels(tmp_path, capsys):
    """`hybridnb corpus run --input` on the hand-written intent corpus (offline stand-in), then export."""
    from pathlib import Path

    data = Path(__file__).parent / "data" / "intents.csv"
    db = tmp_path / "i.duckdb"
    args = ["corpus", "run", "--input", str(data), "--text", "message", "--id", "ticket_id", "--role", "channel",
            "--time", "created", "--truth", "intent", "--db", str(db), "--quiet"]
    assert main(args) == 0
    report = capsys.readouterr().out.split("report: ")[1].strip()
    assert "against the input's truth column" in Path(report).read_text(encoding="utf-8")
    assert main(args) == 0  # resumes from the DB
    out = tmp_path / "labels.parquet"
    assert main(["corpus", "export", "--db", str(db), "--labels", str(out)]) == 0
    labels = pl.read_parquet(out)
    given = pl.read_csv(data, infer_schema=False)
    kept = given.filter(pl.col("message").str.strip_chars().str.len_chars().fill_null(0) > 0)
    assert labels["ticket_id"].to_list() == kept["ticket_id"].to_list()
    assert labels["primary"].null_count() < labels.height // 4
    con = duckdb.connect(str(db), read_only=True)
    f1 = con.execute("SELECT value FROM results WHERE name = 'quality.macro_f1'").fetchall()[0][0]
    missed = con.execute("SELECT value FROM results WHERE name = 'quality.n_missed'").fetchall()[0][0]
    con.close()
    assert f1 > 0.8  # the offline run recovers the intents (0.82 when written, 0.905 with 25 topics)
    assert missed == 0  # every intent has a category of its own (email_login, 5 %, was merged with 15 topics)



def test_the_command_line_stays_light_until_a_corpus_command_runs():
    """Building the parser (every `hybridnb ...` command does) must not import the corpus stack."""
    import subprocess
    import sys

    code = ("import sys; from hybridnb.cli import build_parser; build_parser(); "
            "print([m for m in ('altair', 'sklearn', 'scipy', 'numpy', 'bertopic') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"



def test_cli_runs_on_a_table_in_the_analysts_own_duckdb_file(tmp_path):
    from pathlib import Path

    db = tmp_path / "mine.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE tickets AS SELECT * FROM read_csv('{Path(__file__).parent / 'data' / 'intents.csv'}', "
                "all_varchar = true)")
    con.close()
    assert main(["corpus", "run", "--table", "tickets", "--text", "message", "--id", "ticket_id", "--db", str(db),
                 "--quiet"]) == 0
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM tickets").fetchall()[0][0] == 640  # the analyst's table is kept
    assert con.execute("SELECT count(*) FROM final_labels").fetchall()[0][0] == 637
    con.close()


def test_a_table_named_like_a_corpus_table_is_refused(tmp_path):
    db = tmp_path / "mine.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE labels AS SELECT 'x' AS message")
    con.close()
    with pytest.raises(CorpusError, match=r"tables named like the corpus's own \(labels\)"):
        _store.open_store(db, adopt=True)
    with pytest.raises(CorpusError, match="not a hybridnb corpus DB"):
        _store.open_store(db)


def test_cli_generate_refuses_an_output_it_cannot_write(tmp_path, capsys):
    assert main(["corpus", "generate", "--n", "300", "--out", str(tmp_path / "g.xlsx")]) == 2
    assert "use .parquet, .csv or .jsonl" in capsys.readouterr().err
    assert main(["corpus", "generate", "--n", "300", "--out", str(tmp_path / "no" / "g.csv")]) == 2
    assert "folder does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
