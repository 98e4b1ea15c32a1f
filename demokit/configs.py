"""Runtime configs of a demo run: the ``firmware_config/`` demo files with this run's ports, paths and TLS."""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import re
from pathlib import Path

from . import BROKER_TEMPLATE, LOOPBACK, ROOT, DemoError


def toml_dumps(data: dict) -> str:
    """Write a dict of TOML-able values (tables, arrays, strings, numbers, booleans, datetimes) as TOML."""

    def string(s: str) -> str:
        # JSON escapes ", \\ and C0 controls the TOML way; TOML also forbids a raw DEL.
        return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")

    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else string(k)

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return string(v)
        if isinstance(v, (dt.datetime, dt.date, dt.time)):
            return v.isoformat()
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items() if x is not None) + "}"
        raise TypeError(f"cannot write {type(v).__name__} as TOML")

    def is_table_array(v) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    out: list[str] = []

    def table(d: dict, path: list[str]) -> None:
        for k, v in d.items():
            if v is not None and not isinstance(v, dict) and not is_table_array(v):
                out.append(f"{key(k)} = {value(v)}")
        for k, v in d.items():
            if isinstance(v, dict):
                out.append("")
                out.append("[" + ".".join(key(p) for p in path + [k]) + "]")
                table(v, path + [k])
            elif is_table_array(v):
                for item in v:
                    out.append("")
                    out.append("[[" + ".".join(key(p) for p in path + [k]) + "]]")
                    table(item, path + [k])

    table(data, [])
    return "\n".join(out).lstrip("\n") + "\n"


def plain(value, state_dir: Path):
    """A pydantic ``model_dump()`` made TOML-able: relative paths made absolute (``var/...`` goes to
    ``state_dir``, anything else to the repository), enums to their values, ``None`` dropped."""
    if isinstance(value, Path):
        if value.is_absolute():
            return str(value)
        parts = value.parts
        if parts and parts[0] == "var":
            return str(state_dir.joinpath(*parts[1:]))
        return str(ROOT / value)
    if isinstance(value, enum.Enum):
        return value.value
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    if type(value).__module__.startswith("pydantic"):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v, state_dir) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v, state_dir) for v in value]
    return value


def with_broker_port(url: str, port: int) -> str:
    """``url`` (mqtt://host:port) pointed at ``port`` when its host is loopback; else unchanged."""
    m = re.fullmatch(r"(mqtts?://)([^/:]+|\[[^\]]+\])(?::\d+)?(/.*)?", url)
    if not m or m.group(2).strip("[]") not in LOOPBACK:
        return url
    return f"{m.group(1)}{m.group(2)}:{port}{m.group(3) or ''}"


def patch(data: dict, broker_port: int, web_port: int | None) -> dict:
    """Point every loopback MQTT URL at ``broker_port`` and the ``[web]`` table at ``web_port``."""
    out = {}
    for k, v in data.items():
        if isinstance(v, dict):
            v = patch(v, broker_port, web_port)
            if k == "web" and web_port is not None and "port" in v:
                v["port"] = web_port
        elif isinstance(v, str) and v.startswith(("mqtt://", "mqtts://")):
            v = with_broker_port(v, broker_port)
        out[k] = v
    return out


def load_model(module: str, path: Path):
    """Load ``path`` with ``<module>.load_config`` or ``<module>.load`` (the service's own validation)."""
    import importlib

    from wire.tomlconfig import ConfigError

    mod = importlib.import_module(module)
    loader = getattr(mod, "load_config", None) or getattr(mod, "load")
    try:
        return loader(path)
    except ConfigError as exc:
        raise DemoError(str(exc)) from None


def web_of(cfg: dict, what: str) -> tuple[str, int]:
    """The (host, port) of the ``[web]`` table of a dumped config."""
    web = cfg.get("web")
    if not isinstance(web, dict) or "port" not in web:
        raise DemoError(f"{what}: no [web] port in its config")
    return str(web.get("host", "127.0.0.1")), int(web["port"])


def broker_template_port(text: str) -> int:
    """The port of the ``listener`` line of the demo broker config."""
    m = re.search(r"^\s*listener\s+(\d+)", text, re.M)
    if not m:
        raise DemoError(f"{BROKER_TEMPLATE}: no `listener PORT 127.0.0.1` line")
    return int(m.group(1))


#: Broker config lines naming TLS files: they point into the PKI folder (by file name).
TLS_FILE_KEYS = ("cafile", "certfile", "keyfile", "crlfile")
#: Broker config lines naming other files: relative paths are from the repository root.
REPO_FILE_KEYS = ("acl_file", "password_file")
#: Broker config lines naming files the broker writes: they go in the run's broker folder (by name).
STATE_FILE_KEYS = ("plugin_opt_config_file",)


def broker_conf(text: str, port: int, state_dir: Path, pki_dir: Path | None = None) -> str:
    """The runtime broker config: chosen port, absolute persistence folder, TLS files from
    ``pki_dir`` (default ``state_dir/demo/pki``), the access rules (dynamic-security plugin file)
    in ``state_dir/broker``, other repository files by absolute path, and
    (as root) `user root` so that Mosquitto can write the persistence folder we own."""
    text = re.sub(r"^(\s*listener\s+)\d+", rf"\g<1>{port}", text, flags=re.M)
    broker_dir = state_dir / "broker"
    text = re.sub(r"^(\s*persistence_location\s+).*$", rf"\g<1>{broker_dir}/", text, flags=re.M)
    pki_dir = Path(pki_dir) if pki_dir is not None else state_dir / "demo" / "pki"

    def tls_file(m: re.Match) -> str:
        return f"{m.group(1)}{pki_dir / Path(m.group(2).strip()).name}"

    def repo_file(m: re.Match) -> str:
        path = Path(m.group(2).strip())
        return f"{m.group(1)}{path if path.is_absolute() else ROOT / path}"

    text = re.sub(rf"^(\s*(?:{'|'.join(TLS_FILE_KEYS)})\s+)(.+)$", tls_file, text, flags=re.M)
    text = re.sub(rf"^(\s*(?:{'|'.join(REPO_FILE_KEYS)})\s+)(.+)$", repo_file, text, flags=re.M)
    text = re.sub(rf"^(\s*(?:{'|'.join(STATE_FILE_KEYS)})\s+)(.+)$",
                  lambda m: f"{m.group(1)}{broker_dir / Path(m.group(2).strip()).name}", text, flags=re.M)
    if os.geteuid() == 0 and not re.search(r"^\s*user\s", text, re.M):
        text += "\n# demo.py runs as root: keep root so the persistence folder stays writable.\nuser root\n"
    return text


def with_tls(cfg: dict, ca: Path, cert: Path, key: Path) -> dict:
    """The ``[broker]`` table of a dumped config on this run's broker: ``mqtts://`` with the CA and
    the client's certificate and key (a broker elsewhere is left as configured)."""
    broker = dict(cfg.get("broker") or {})
    m = re.fullmatch(r"mqtts?://(([^/:]+|\[[^\]]+\]).*)", str(broker.get("url", "")))
    if not m or m.group(2).strip("[]") not in LOOPBACK:
        return cfg
    broker.update(url="mqtts://" + m.group(1), ca_file=str(ca), cert_file=str(cert), key_file=str(key))
    return {**cfg, "broker": broker}
