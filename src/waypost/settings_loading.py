"""Loading the settings document: YAML, ``WAYPOST_*`` environment overrides, ``env://`` references.

``waypost.settings`` holds the typed models and validates what this module assembles; problems
found here raise ``ConfigError`` naming the offending key (or environment variable).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml
from pydantic import ValidationError

# What names a credential: the one rule, shared with the scrubbing of upstream text.
from waypost.providers.credentials import CREDENTIAL_NAME, REDACTED

if TYPE_CHECKING:
    from waypost.settings import Settings

ENV_PREFIX = "WAYPOST_"
SECRETS_FILE_NAME = "waypost-secrets.json"  # generated secrets, when none are configured


class ConfigError(Exception):
    """A configuration problem; the message names the key (one line per problem).
    ``only_environment``: every problem comes from ``WAYPOST_*`` overrides, none from the file."""

    def __init__(self, message: str, *, only_environment: bool = False) -> None:
        super().__init__(message)
        self.only_environment = only_environment


def _path(parts: list[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _parse_env_value(raw: str) -> Any:
    # Structured values only when they look structured; "no" stays the string "no".
    if raw[:1] in "[{":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    return raw


def apply_env_overrides(
    doc: dict[str, Any], environ: Mapping[str, str], sections: Collection[str]
) -> dict[str, Any]:
    """``WAYPOST_SERVER__PORT=9000`` sets ``server.port``; numeric parts index lists
    (``WAYPOST_MODELS__0__API_KEY``). Only variables whose first part is one of ``sections``."""
    for key, value in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("__")]
        if parts[0] not in sections:
            continue  # other WAYPOST_* variables (e.g. WAYPOST_CONFIG) are not settings
        node: Any = doc
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"{key}: no list item {part!r} to override")
                if last:
                    node[int(part)] = _parse_env_value(value)
                else:
                    node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: cannot override inside a scalar value")
            if last:
                node[part] = _parse_env_value(value)
            else:
                node = node.setdefault(part, {})
    return doc


def env_override_paths(environ: Mapping[str, str], sections: Collection[str]) -> dict[str, str]:
    """The settings paths ``WAYPOST_*`` variables set (``server.port``, ``models[0].api_key``),
    each with its variable's name: to blame a bad value on the variable, not the file."""
    out: dict[str, str] = {}
    for key in environ:
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("__")] if key.startswith(ENV_PREFIX) else []
        if parts and parts[0] in sections:
            out[_path([int(p) if p.isdigit() else p for p in parts])] = key
    return out


def blame_environment(
    lines: list[str], overrides: Mapping[str, str], origins: Mapping[str, str] | None = None
) -> tuple[list[str], bool]:
    """Each problem line whose key an environment variable set, marked with the variable's name
    (else, with ``origins``, the local override file or the environment section that set it); and
    whether every line is one an environment variable set."""

    def setter(where: str, paths: Mapping[str, str]) -> str | None:
        return next(
            (
                src
                for path, src in paths.items()
                if where == path or where.startswith((path + ".", path + "["))
            ),
            None,
        )

    out, all_env = [], bool(lines)
    for line in lines:
        where = line.split(": ", 1)[0]
        source = setter(where, overrides)
        if source is not None:
            out.append(f"{line} (set by the environment variable {source})")
            continue
        all_env = False
        origin = setter(where, origins or {})
        out.append(line if origin is None else f"{line} (set {origin})")
    return out, all_env


def _leaf_paths(node: Any, path: list[str | int]) -> list[str]:
    """The settings paths a document sets: every value that is not a mapping (a list counts as one
    value, since a merge replaces it whole)."""
    if isinstance(node, dict) and node:
        return [leaf for k, v in node.items() for leaf in _leaf_paths(v, [*path, str(k)])]
    return [_path(path)] if path else []


_ENV_REF = re.compile(r"^env://([A-Za-z_][A-Za-z0-9_]*)(?:,(.*))?$", re.S)


def resolve_env_refs(
    node: Any,
    environ: Mapping[str, str],
    path: list[str | int] | None = None,
    empty: dict[tuple[str | int, ...], str] | None = None,
    problems: dict[str, str] | None = None,
) -> Any:
    """Replace every ``env://VAR`` or ``env://VAR,default`` string with its value. ``empty``, when
    given, gets the variable of every reference that resolved to an empty string, by path (so a
    model whose ``api_key`` came out empty can name the variable to set). ``problems``, when given,
    gets every reference that cannot be resolved (by path; its value becomes None) instead of the
    first one raising, so that one run reports them all."""
    path = path or []
    if isinstance(node, dict):
        return {k: resolve_env_refs(v, environ, [*path, str(k)], empty, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_env_refs(v, environ, [*path, i], empty, problems) for i, v in enumerate(node)]
    if isinstance(node, str) and node.startswith("env://"):
        match = _ENV_REF.match(node)
        if not match:
            shown = node.partition(",")[0]  # a default after the comma may be a secret
            problem = f"malformed reference {shown!r} (expected env://VAR or env://VAR,default)"
        else:
            var, default = match.group(1), match.group(2)
            value = environ.get(var, default)
            if value is not None:
                if not value and empty is not None:
                    empty[tuple(path)] = var
                return value
            problem = f"environment variable {var} is not set and no default is given"
        if problems is None:
            raise ConfigError(f"{_path(path)}: {problem}")
        problems[_path(path)] = f"{_path(path)}: {problem}"
        return None
    return node


_URL_PASSWORD = re.compile(r"(://[^/@\s:]*:)[^/@\s]*@")
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]*=)[^&#\s'\"]*")


def _without_url_secrets(text: str) -> str:
    """``text`` with the password and query values of any URL in it replaced."""
    return _QUERY_VALUE.sub(rf"\1{REDACTED}", _URL_PASSWORD.sub(rf"\1{REDACTED}@", text))


def _is_secret(loc: list[str | int]) -> bool:
    """Whether the value at ``loc`` may be a secret: its key's own name says so (``api_key``,
    ``aws.secret_access_key``, ``encryption_keys[0]``), or it is one of a model's ``headers``."""
    name = next((part for part in reversed(loc) if isinstance(part, str)), "")
    return "headers" in loc or CREDENTIAL_NAME.search(name) is not None


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the key. The offending value is shown only where it cannot
    be a secret (never under a key like ``api_key`` or ``headers``, never a URL's query or
    password), so that a refused config never prints a credential."""
    lines = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if p not in ("function-after[_cross_checks(), Settings]",)]
        msg = err["msg"].removeprefix("Value error, ")
        where = _path(list(loc)) if loc else ""
        value = err.get("input")
        if _is_secret(loc):
            if isinstance(value, str) and value:
                msg = msg.replace(value, REDACTED)
        elif "input" in err and err["type"] not in ("missing",) and not isinstance(value, (dict, list)):
            msg += f" (got {value!r})"
        lines.append(_without_url_secrets(f"{where}: {msg}" if where and not msg.startswith(where) else msg))
    return "\n".join(lines)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what, without the quoted line PyYAML adds (it may hold a secret)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return (
            f"{exc.problem or exc.context or 'cannot parse'} (line {mark.line + 1}, column {mark.column + 1})"
        )
    return "cannot parse the file"


CONFIG_ENV_VAR = "WAYPOST_CONFIG_ENV"  # chooses one of the file's ``environments``
ENVIRONMENTS_KEY = "environments"


def local_override_path(path: str | Path) -> Path:
    """The optional, git-ignored override file beside a config file: ``waypost.yaml`` ->
    ``waypost.local.yaml``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.local{path.suffix}")


def describe_sources(path: str | Path | None, environ: Mapping[str, str]) -> str:
    """Where the settings come from, for ``config check`` and the start-up log line: the file
    (and its chosen environment), the local override file when there is one; else the defaults."""
    if path is None:
        return "the built-in defaults (no --config or $WAYPOST_CONFIG given)"
    chosen = environ.get(CONFIG_ENV_VAR) or None
    out = str(path) + (f" (environment {chosen!r})" if chosen else "")
    local = local_override_path(path)
    return f"{out} + {local}" if local.is_file() else out


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key; lists and values are replaced."""
    out = dict(base)
    for key, value in over.items():
        current = out.get(key)
        out[key] = (
            deep_merge(current, value) if isinstance(current, dict) and isinstance(value, dict) else value
        )
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return doc


def _with_environment(doc: dict[str, Any], chosen: str | None, path: str | Path) -> dict[str, Any]:
    """The file's base settings with the chosen environment's section merged over them."""
    environments = doc.pop(ENVIRONMENTS_KEY, None)
    if environments is None:
        environments = {}
    if not isinstance(environments, dict) or not all(isinstance(v, dict) for v in environments.values()):
        raise ConfigError(f"{path}: {ENVIRONMENTS_KEY} must map each environment's name to settings")
    if chosen is None:
        return doc
    if chosen not in environments:
        known = ", ".join(sorted(environments)) or "none"
        raise ConfigError(f"{CONFIG_ENV_VAR}={chosen!r}: {path} has no such environment (it has: {known})")
    return deep_merge(doc, environments[chosen])


def read_document(
    path: str | Path | None,
    environ: Mapping[str, str],
    sections: Collection[str],
    empty: dict[tuple[str | int, ...], str] | None = None,
    origins: dict[str, str] | None = None,
    problems: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The settings document: the file (if any), then environment overrides, ``env://`` resolved.
    ``origins``, when given, gets the keys the chosen environment's section and the local override
    file set (to blame a problem on them); ``problems`` the ``env://`` references that cannot be
    resolved (see ``resolve_env_refs``)."""
    doc: dict[str, Any] = {}
    chosen = environ.get(CONFIG_ENV_VAR) or None
    if path is not None:
        doc = _read_yaml(Path(path))
        environments = doc.get(ENVIRONMENTS_KEY)
        section = environments.get(chosen) if chosen and isinstance(environments, dict) else None
        doc = _with_environment(doc, chosen, path)
        if origins is not None and isinstance(section, dict):
            origins.update(dict.fromkeys(_leaf_paths(section, []), f"by {ENVIRONMENTS_KEY}.{chosen}"))
        local = local_override_path(path)
        if local.is_file():
            over = _read_yaml(local)
            doc = deep_merge(doc, over)
            if origins is not None:
                origins.update(dict.fromkeys(_leaf_paths(over, []), f"in {local}"))
    elif chosen is not None:
        raise ConfigError(f"{CONFIG_ENV_VAR}={chosen!r} names an environment, but no config file is given")
    doc = apply_env_overrides(doc, environ, sections)
    doc = resolve_env_refs(doc, environ, empty=empty, problems=problems)
    if environ.get("WAYPOST_ADMIN_PASSWORD") and isinstance(doc.get("auth", {}), dict):
        doc.setdefault("auth", {}).setdefault("admin_password", environ["WAYPOST_ADMIN_PASSWORD"])
    return doc


def anchor_relative_files(settings: Settings, path: str | Path) -> None:
    """Make a relative SQLite file, secrets file and audit spool live beside the config file."""
    # A relative SQLite file lives beside the config file, wherever the server is started from.
    url = settings.database.url
    match = re.match(r"^(sqlite(?:\+[a-z0-9]+)?:///)(?!/)(.+)$", url)
    if match and match.group(2) != ":memory:":
        absolute = Path(path).resolve().parent / match.group(2)
        settings.database.url = f"{match.group(1)}{absolute}"
    # So does a relative secrets file; and with no SQLite file to keep them beside (PostgreSQL),
    # generated secrets are kept beside the config file too.
    security = settings.security
    if security.secrets_file is not None:
        security.secrets_file = str(Path(path).resolve().parent / security.secrets_file)
    elif not url.startswith("sqlite"):
        security.secrets_file = str(Path(path).resolve().parent / SECRETS_FILE_NAME)
    # The audit spool too: rows spooled while the database was down must be found by the next
    # start, whatever directory it is started from.
    audit = settings.audit
    if audit.spool_dir is not None:
        audit.spool_dir = str(Path(path).resolve().parent / audit.spool_dir)
    elif not url.startswith("sqlite"):
        audit.spool_dir = str(Path(path).resolve().parent / ".waypost" / "spool")
