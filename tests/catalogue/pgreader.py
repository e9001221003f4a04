"""The README's reader role for ``securitynet sql`` on PostgreSQL, created by its own SQL."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

README = Path(__file__).resolve().parents[2] / "README.md"
ROLE = "sn_reader"


def readme_reader_sql() -> list[str]:
    """The statements of the README's ```sql block that creates the reader role."""
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), re.DOTALL)
    (block,) = [b for b in blocks if f"CREATE ROLE {ROLE}" in b]
    return [s.strip() for s in block.split(";") if s.strip()]


def create_reader(url: str, *, role: str = ROLE) -> str:
    """Run the README's SQL (as ``url``'s owner, role renamed to ``role``) on ``url``'s
    database; the URL that connects as the reader. The role is cluster-wide: a second
    database only gets the grants."""
    from psycopg.errors import DuplicateObject

    admin = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            for statement in readme_reader_sql():
                statement = statement.replace(ROLE, role)
                try:
                    conn.execute(text(statement))
                except Exception as exc:
                    if not (
                        statement.startswith("CREATE ROLE")
                        and isinstance(exc.__cause__, DuplicateObject)
                    ):
                        raise
    finally:
        admin.dispose()
    return make_url(url).set(username=role, password=None).render_as_string(hide_password=False)
