"""Alembic migrations: the schema they build matches the models, and they can be undone."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from bot import db
from bot.cli import main as cli_main
from bot.models import Base


def schema_differences(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_upgrade_matches_models(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")

    db.upgrade(engine)

    assert schema_differences(engine) == []
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_upgrade_twice_is_noop(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'twice.sqlite3'}")

    db.upgrade(engine)
    db.upgrade(engine)

    assert schema_differences(engine) == []
    engine.dispose()


def test_downgrade_to_base_drops_tables(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'down.sqlite3'}")
    db.upgrade(engine)

    db.downgrade(engine, "base")

    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    db.upgrade(engine)
    assert schema_differences(engine) == []
    engine.dispose()


def test_db_upgrade_cli(tmp_path, capsys):
    data_dir = tmp_path / "data"

    assert cli_main(["db", "upgrade", "--data-dir", str(data_dir)]) == 0

    assert "database is up to date" in capsys.readouterr().out
    engine = db.make_engine(f"sqlite:///{data_dir / 'careerbot.sqlite3'}")
    assert schema_differences(engine) == []
    engine.dispose()


def test_postgres_upgrade_matches_models(postgres_database):
    engine = db.make_engine(postgres_database)

    db.upgrade(engine)

    assert schema_differences(engine) == []
    engine.dispose()


def test_postgres_index_step_runs_again(postgres_database):
    engine = db.make_engine(postgres_database)
    db.upgrade(engine, "0005")
    with engine.begin() as connection:
        connection.execute(text("CREATE INDEX ix_processed_updates_handled_at ON processed_updates (handled_at)"))

    db.upgrade(engine)

    assert schema_differences(engine) == []
    db.downgrade(engine, "0005")
    assert "ix_processed_updates_handled_at" not in {
        index["name"] for index in inspect(engine).get_indexes("processed_updates")}
    engine.dispose()
