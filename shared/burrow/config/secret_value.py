"""A secret given inline or in a file (``admin_token``/``admin_token_file``, the cluster
``secret``/``secret_file``): one reader, one set of checks, errors that name the key."""

from __future__ import annotations

from .errors import ConfigError

GENERATE_HINT = "use e.g. the output of: python3 -c 'import secrets; print(secrets.token_hex(16))'"


def read_secret(
    inline: str | None,
    path: str | None,
    *,
    key: str,
    what: str,
    min_length: int,
    file: str | None,
) -> str | None:
    """The secret set at ``key`` (inline) or ``key + "_file"``; None when neither is set.

    ``what`` names it in messages ("admin token"). Both set, an unreadable file, or a value
    shorter than ``min_length`` or containing spaces is a ConfigError; the value never appears
    in one.
    """
    file_key = f"{key}_file"
    if inline is not None and path is not None:
        raise ConfigError(
            f"both {key.rsplit('.', 1)[-1]} and {file_key.rsplit('.', 1)[-1]} are set",
            fix="keep one of them",
            key=file_key,
            file=file,
        )
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the {what} file {path}: {exc.strerror}",
                fix=f"create the file (one line, the {what}) readable by burrow, or fix the path",
                key=file_key,
                file=file,
            ) from exc
        key = file_key
    elif inline is not None:
        value = inline
    else:
        return None
    if len(value) < min_length or any(c.isspace() for c in value):
        raise ConfigError(
            f"the {what} must be at least {min_length} characters without spaces",
            fix=GENERATE_HINT,
            key=key,
            file=file,
        )
    return value
