"""Operations tests reuse the HTTP tests' app on memory adapters (tests/http/conftest.py)."""

from tests.http.conftest import api, make_api, world

__all__ = ["api", "make_api", "world"]
