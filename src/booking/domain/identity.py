"""Who is asking: the platform's principal (user id, name, roles)."""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_ACCOUNT = "SERVICE_ACCOUNT"
ADMIN = "ADMIN"
USER = "USER"


def normalise_role(role: str) -> str:
    """`ROLE_USER` and `USER` are the same role; keep the bare name."""
    role = role.strip()
    return role[5:] if role.upper().startswith("ROLE_") else role


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    roles: frozenset[str]

    @classmethod
    def of(
        cls, user_id: int, username: str | None, roles: list[str] | tuple[str, ...]
    ) -> Principal:
        clean = frozenset(normalise_role(r).upper() for r in roles if r.strip())
        return cls(user_id, username or f"{user_id}_null", clean)

    @classmethod
    def system(cls, owner_id: int) -> Principal:
        """The identity a background job acts with on behalf of a booking's owner."""
        return cls(owner_id, f"{owner_id}_system", frozenset({SERVICE_ACCOUNT}))

    def has(self, role: str) -> bool:
        return normalise_role(role).upper() in self.roles

    @property
    def is_service(self) -> bool:
        return SERVICE_ACCOUNT in self.roles

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles
