"""Where the local Consul agent is and how to authenticate to it.

Shared by the discovery client (apps that look services up) and the
registrar (the sidecar that registers them), so both read the same settings
the Consul CLI reads:

- ``CONSUL_HTTP_ADDR``: ``host:port`` or ``http(s)://host:port`` (default
  ``127.0.0.1:8500``). On ECS it is ``consul-agent:8500``: the task definition
  maps that host name to the instance (the Docker bridge gateway), so no
  address is written into an image or an environment.
- ``CONSUL_HTTP_SSL``: ``true`` makes a bare ``host:port`` use https;
  ``CONSUL_CACERT``: the CA bundle that signs the agent's certificate.
- ``CONSUL_HTTP_TOKEN`` or ``CONSUL_HTTP_TOKEN_FILE``: ACL token sent as the
  ``X-Consul-Token`` header.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import requests

from apps.common.config import ConfigError

DEFAULT_AGENT = "127.0.0.1:8500"
# Consul service names are DNS labels, so that <name>.service.consul resolves.
SERVICE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def service_name(setting: str, value: str | None) -> str:
    """``value`` when it is a usable Consul service name, else ConfigError naming ``setting``."""
    if not value or not SERVICE_NAME.fullmatch(value):
        raise ConfigError(f"{setting}={value!r}: a Consul service name (a DNS label: letters, digits, -) is required")
    return value


def agent_url(address: str | None = None) -> str:
    """Normalise an agent address (default ``CONSUL_HTTP_ADDR``) to ``scheme://host:port``.

    Raises ConfigError naming the value when it is not a usable address.
    """
    raw = (address or os.environ.get("CONSUL_HTTP_ADDR") or DEFAULT_AGENT).strip().rstrip("/")
    text = raw
    if "://" not in text:
        ssl = os.environ.get("CONSUL_HTTP_SSL", "").strip().lower() in ("1", "true", "yes")
        text = ("https://" if ssl else "http://") + text
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or port == -1:
        raise ConfigError(
            f"CONSUL_HTTP_ADDR={raw!r} is not a Consul agent address: use host:port or http(s)://host:port"
        )
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def agent_token(token: str | None = None) -> str | None:
    """The ACL token: ``token``, else ``CONSUL_HTTP_TOKEN``, else the file ``CONSUL_HTTP_TOKEN_FILE``."""
    if token is not None:
        return token or None
    token = os.environ.get("CONSUL_HTTP_TOKEN", "").strip()
    if token:
        return token
    token_file = os.environ.get("CONSUL_HTTP_TOKEN_FILE", "").strip()
    if token_file:
        try:
            return Path(token_file).read_text().strip() or None
        except OSError as error:
            raise ConfigError(f"CONSUL_HTTP_TOKEN_FILE={token_file!r} cannot be read: {error}") from None
    return None


def agent_session(token: str | None = None) -> requests.Session:
    """A session that sends the ACL token (when there is one) with every request."""
    session = requests.Session()
    # Never pick up proxies from the environment: the agent is always local.
    session.trust_env = False
    ca_file = os.environ.get("CONSUL_CACERT", "").strip()
    if ca_file:
        session.verify = ca_file
    token = agent_token(token)
    if token:
        session.headers["X-Consul-Token"] = token
    return session
