"""Encrypted secrets (the store sees only ciphertext) and a small key-value table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from waypost.core.errors import NotFound
from waypost.store import tables
from waypost.store.records import SecretRecord
from waypost.store.repository import Repository, now, upsert

_secrets, _kv = tables.secrets, tables.kv


class SecretRepo(Repository):
    async def create(self, name: str, *, ciphertext: str, description: str = "") -> SecretRecord:
        stamp = now()
        async with self._write(conflict=f"a secret named {name!r} already exists") as conn:
            row = (
                await conn.execute(
                    sa.insert(_secrets)
                    .values(
                        name=name,
                        description=description,
                        ciphertext=ciphertext,
                        created_at=stamp,
                        updated_at=stamp,
                    )
                    .returning(*_secrets.c)
                )
            ).one()
        return _secret(row._mapping)

    async def get(self, name: str) -> SecretRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(_secrets).where(_secrets.c.name == name))).one_or_none()
        return _secret(row._mapping) if row is not None else None

    async def ciphertext(self, name: str) -> str | None:
        async with self._read() as conn:
            return await conn.scalar(sa.select(_secrets.c.ciphertext).where(_secrets.c.name == name))

    async def list(self) -> list[SecretRecord]:
        async with self._read() as conn:
            rows = (await conn.execute(sa.select(_secrets))).all()
        return sorted((_secret(row._mapping) for row in rows), key=lambda secret: secret.name)

    async def update(
        self, name: str, *, ciphertext: str | None = None, description: str | None = None
    ) -> SecretRecord:
        values: dict[str, Any] = {"updated_at": now()}
        if ciphertext is not None:
            values["ciphertext"] = ciphertext
        if description is not None:
            values["description"] = description
        async with self._write() as conn:
            row = (
                await conn.execute(
                    sa.update(_secrets).where(_secrets.c.name == name).values(**values).returning(*_secrets.c)
                )
            ).one_or_none()
        if row is None:
            raise NotFound(f"secret {name!r} does not exist")
        return _secret(row._mapping)

    async def delete(self, name: str) -> bool:
        async with self._write() as conn:
            result = await conn.execute(sa.delete(_secrets).where(_secrets.c.name == name))
        return result.rowcount > 0

    async def all_ciphertexts(self) -> dict[str, str]:
        async with self._read() as conn:
            rows = (await conn.execute(sa.select(_secrets.c.name, _secrets.c.ciphertext))).all()
        return {name: ciphertext for name, ciphertext in rows}

    async def replace_ciphertexts(
        self, ciphertexts: Mapping[str, str], *, expected: Mapping[str, str] | None = None
    ) -> int:
        """Swap in re-encrypted values, all in one transaction; returns how many were replaced.
        Names that no longer exist are skipped. With ``expected`` (the ciphertexts the new ones
        were made from, e.g. ``all_ciphertexts()``), a secret changed meanwhile is left alone
        rather than overwritten with its old value. ``updated_at`` stays: the values are the same."""
        replaced = 0
        async with self._write() as conn:
            for name, ciphertext in ciphertexts.items():
                query = sa.update(_secrets).where(_secrets.c.name == name).values(ciphertext=ciphertext)
                if expected is not None:
                    if name not in expected:
                        continue
                    query = query.where(_secrets.c.ciphertext == expected[name])
                replaced += (await conn.execute(query)).rowcount
        return replaced


class KvRepo(Repository):
    async def get(self, key: str) -> str | None:
        async with self._read() as conn:
            return await conn.scalar(sa.select(_kv.c.value).where(_kv.c.key == key))

    async def set(self, key: str, value: str) -> None:
        async with self._write() as conn:
            await conn.execute(upsert(conn, _kv, {"key": key, "value": value}, key="key"))


def _secret(row: Any) -> SecretRecord:
    return SecretRecord(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
