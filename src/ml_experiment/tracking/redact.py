"""Keep credentials out of the knowledge center: secret-looking parameters and URLs are masked."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "SECRET_MARKERS",
    "TAG_MAX",
    "clip",
    "is_secret_key",
    "redact_params",
    "redact_value",
    "scrub",
    "secret_values",
]

REDACTED = "***"

SECRET_MARKERS: tuple[str, ...] = (
    "token",
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "credential",
    "webhook",
    "auth",
)

# Words are matched whole, so ML parameters such as `tokenizer`, `max_tokens`, `author`, `keys`,
# `key_size` or `monkey` stay visible. Plurals of these count too.
_SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "secrets",
        "auth",
        "oauth",
        "authorization",
        "credential",
        "credentials",
        "creds",
        "passphrase",
        "webhook",
        "webhooks",
        "apikey",
        "accesskey",
        "privatekey",
    }
)
# These are secret wherever they appear, even inside a word (`dbpassword`, `slackwebhookurl`).
_SECRET_SUBSTRINGS = ("password", "passwd", "credential", "webhook", "apikey")
# Tokenizer settings (`bos_token`, `pad_token_id`, `max_token_length`) are not credentials.
_NOT_SECRET_TOKEN_PREFIXES = frozenset(
    {"bos", "eos", "pad", "unk", "cls", "sep", "mask", "start", "end", "special", "max", "min"}
    | {"num", "n"}
)
# `api_key`, `access_key`, `private_key` after splitting into words.
_SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key")})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")

# scheme://userinfo@host: everything between "//" and the last "@" before the path (greedy, so an
# unescaped "@" inside the password does not leak the rest of it).
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s?#]+)@")
_SLACK = re.compile(
    r"(?P<keep>hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/)[^\s\"'<>]+"
)
_DISCORD = re.compile(r"(?P<keep>discord(?:app)?\.com/api/webhooks/)[^\s\"'<>]+")
_TELEGRAM = re.compile(r"(?P<keep>/bot)\d+:[A-Za-z0-9_\-]+")


def is_secret_key(name: str) -> bool:
    """Tell whether a parameter / setting name looks like it holds a credential.

    Matches names containing token, password, passwd, secret, api_key / apikey, access_key,
    private_key, credential, webhook or auth as a word (split at ``_ - .``, spaces and camelCase),
    and ``key`` alone or as the last word (``ssh_key``). ``tokenizer``, ``max_tokens``, ``author``,
    ``keys``, ``key_size``, ``monkey`` and tokenizer settings such as ``bos_token`` or
    ``pad_token_id`` are not secret.

    Args:
        name: The key, any case.

    Returns:
        True if the value should be redacted.
    """
    text = str(name)
    lowered = text.lower()
    if any(marker in lowered for marker in _SECRET_SUBSTRINGS):
        return True
    words = [w.lower() for w in _SEPARATORS.split(_CAMEL.sub("_", text)) if w]
    if not words:
        return False
    if words[-1] == "key":
        return True
    for index, word in enumerate(words):
        if word == "token":
            if index == 0 or words[index - 1] not in _NOT_SECRET_TOKEN_PREFIXES:
                return True
        elif word in _SECRET_WORDS:
            return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


def redact_value(value: Any) -> Any:
    """Mask credentials embedded in a value; other values are returned unchanged.

    In strings: the ``user:password@`` part of URLs becomes ``***@``, the secret path of Slack and
    Discord webhook URLs becomes ``***``, and Telegram bot tokens in ``/bot<token>/`` become
    ``/bot***/``. Lists, tuples and dicts are processed recursively (dicts by `redact_params`).

    Args:
        value: Any value.

    Returns:
        The value with credentials replaced by ``REDACTED``.
    """
    if isinstance(value, str):
        if "/" not in value:  # every pattern needs one: skip the regexes for plain values
            return value
        text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", value)
        text = _SLACK.sub(lambda m: f"{m['keep']}{REDACTED}", text)
        text = _DISCORD.sub(lambda m: f"{m['keep']}{REDACTED}", text)
        return _TELEGRAM.sub(lambda m: f"{m['keep']}{REDACTED}", text)
    if isinstance(value, Mapping):
        return redact_params(value)
    if isinstance(value, list | tuple) and not hasattr(value, "_fields"):
        return type(value)(redact_value(item) for item in value)
    return value


def redact_params(params: Mapping[Any, Any]) -> dict[Any, Any]:
    """Return a copy of ``params`` with the values of secret keys replaced by ``REDACTED``.

    Nested dicts are handled recursively; other values go through `redact_value`. A secret key
    whose value is None keeps None (nothing to hide, and it shows the setting was empty).

    Args:
        params: Parameters, settings or tags.

    Returns:
        A new dict; the input is not modified.
    """
    result: dict[Any, Any] = {}
    for key, value in params.items():
        if value is not None and is_secret_key(str(key)):
            result[key] = REDACTED
        else:
            result[key] = redact_value(value)
    return result


# -- text stored in the knowledge center -------------------------------------------------------

TAG_MAX = 5000  # longest tag value kept (MLflow allows 8000; room for the marker)
MIN_SECRET_LEN = 4  # shorter strings would mangle ordinary text


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every known secret string in ``text`` by ``REDACTED``, longest first.

    Longest first, so a secret that contains another one is replaced whole.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len)[::-1]:
        text = text.replace(secret, REDACTED)
    return text


def clip(text: str, limit: int = TAG_MAX) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    marker = f"... [{len(text) - limit} more characters]"
    return text[: max(0, limit - len(marker))] + marker


def secret_values(params: Mapping[Any, Any]) -> list[str]:
    """The values of secret-named parameters as text, to scrub wherever they might be printed."""
    found: list[str] = []
    for key, value in params.items():
        if isinstance(value, Mapping):
            found.extend(secret_values(value))
        elif value is not None and is_secret_key(str(key)):
            found.append(value if isinstance(value, str) else str(value))
    return found
