"""The commands the default banner prints (default.toml's header), read back as argv lists."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from burrow.supervisor import cli


@dataclass(frozen=True)
class BannerCommand:
    """One printed `burrow ...` / `gost ...` line: the program, its flags, the -F scheme."""

    program: str
    argv: list[str]

    @property
    def scheme(self) -> str:
        """The -F URL's scheme: "relay" (gost rc) or "tunnel" (gost 3.x)."""
        return urlsplit(self.argv[self.argv.index("-F") + 1]).scheme

    @property
    def role(self) -> str:
        """ "client" for an rtcp service, "visitor" for a tcp one."""
        return "client" if self.argv[self.argv.index("-L") + 1].startswith("rtcp://") else "visitor"


@dataclass(frozen=True)
class CurlLine:
    """A printed `curl -H "Host: h" http://host:port/` line."""

    host_header: str
    address: tuple[str, int]


def banner_text() -> str:
    """What `burrow` with no arguments prints before it starts."""
    return cli._default_hint(cli.default_config_text())


def _lines(text: str | None, starts: tuple[str, ...]) -> list[str]:
    """The banner's command lines (indented lines starting with one of ``starts``)."""
    lines = (text if text is not None else banner_text()).splitlines()
    return [line.strip() for line in lines if line.strip().startswith(starts)]


def commands(text: str | None = None) -> list[BannerCommand]:
    """Every `burrow -L ...` and `gost -L ...` line of the banner, in order."""
    out = []
    for line in _lines(text, ("burrow -L ", "gost -L ")):
        words = shlex.split(line)
        out.append(BannerCommand(words[0], words[1:]))
    return out


def curls(text: str | None = None) -> list[CurlLine]:
    """Every `curl` line of the banner (client first, then visitor)."""
    out = []
    for line in _lines(text, ("curl -H ",)):
        words = shlex.split(line)
        header = words[2].partition(":")[2].strip()
        url = urlsplit(words[3])
        assert url.hostname is not None and url.port is not None, line
        out.append(CurlLine(header, (url.hostname, url.port)))
    return out
