"""Load a TOML file into a pydantic model; every error names the file and the field."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration file that cannot be used; ``str()`` is one message for the user."""


def format_errors(path: Path | str, exc: ValidationError) -> str:
    """Render a pydantic ValidationError as ``file: field: what is wrong`` lines."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        lines.append(f"{path}: {field}: {msg}")
    return "\n".join(lines)


def load(path: Path | str, model: type[M]) -> M:
    """Read ``path`` as TOML and validate it as ``model``; raise ConfigError naming file and field."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(path, exc)) from None
