"""The judge server's media policy: what a client may make the server read.

- data URLs (base64) and `input_audio` data: always accepted, decoded size bounded;
- local files: only with --allowed-media-root, and only inside it after symlinks and `..` are
  resolved (`Path.resolve()`, then `is_relative_to`); `file://` URLs are local paths. A path
  outside the root is refused with one message whether it exists or not;
- http(s) URLs: refused unless --allow-remote-media; then fetched with httpx (no redirects, bounded
  size and time) before the request is decoded;
- any other scheme: refused.
Refusals are RequestErrors whose messages name the request field, never the path or the file.
"""
from __future__ import annotations

import base64
import binascii
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from flex_models.confine import OutsideRoot, confine
from flex_judge.serving.protocol import RequestError

OUTSIDE = "is not inside this server's allowed media root"


@dataclass
class Remote:
    """An http(s) media URL to fetch (only with --allow-remote-media)."""
    url: str
    field: str


@dataclass
class MediaPolicy:
    root: Path | None = None
    allow_remote: bool = False
    max_bytes: int = 20 * 2**20
    remote_timeout_s: float = 10.0

    def __post_init__(self):
        self.root = Path(self.root).resolve(strict=True) if self.root is not None else None

    # ------------------------------------------------------------------ inline data
    def base64_bytes(self, data: str, field: str) -> bytes:
        if len(data) > self.max_bytes * 4 // 3 + 4:
            raise RequestError(f"{field}: media larger than {self.max_bytes} bytes", status=413, code="media_too_large")
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(f"{field}: not valid base64", code="invalid_media") from None

    def _data_url(self, url: str, kind: str, field: str) -> bytes:
        head, sep, data = url.partition(",")
        if not sep or ";base64" not in head:
            raise RequestError(f"{field}: data URLs must be base64 (data:<mime>;base64,<data>)", code="invalid_media")
        return self.base64_bytes(data, field)

    # ------------------------------------------------------------------ local files
    def local(self, ref: str, kind: str, field: str) -> Path:
        """The resolved path of a local file the client may read, else a RequestError."""
        if self.root is None:
            raise RequestError(f"{field}: local files and file:// URLs are refused by this server (it was started "
                               "without --allowed-media-root); send the media as a data URL",
                               status=403, code="local_media_refused", type="permission_error")
        try:
            path = confine(ref, self.root)  # the project's one confinement rule (flex_models.confine)
        except OutsideRoot:
            raise RequestError(f"{field} {OUTSIDE}", status=403, code="outside_media_root",
                               type="permission_error") from None
        return path

    def read_local(self, ref: str, kind: str, field: str) -> bytes:
        path = self.local(ref, kind, field)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            raise RequestError(f"{field}: no such readable file in the media root", status=404,
                               code="media_not_found", type="not_found_error") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise RequestError(f"{field}: not a regular file", code="invalid_media")
            if st.st_size > self.max_bytes:
                raise RequestError(f"{field}: media larger than {self.max_bytes} bytes", status=413,
                                   code="media_too_large")
            with os.fdopen(fd, "rb") as f:
                fd = None
                return f.read(self.max_bytes + 1)[: self.max_bytes + 1]
        finally:
            if fd is not None:
                os.close(fd)

    # ------------------------------------------------------------------ any reference
    def resolve(self, url: str, kind: str, field: str):
        """A media reference -> what the flex loaders read: bytes (images, audio), a resolved
        path string (video: its loader reads files), or Remote (fetched later, asynchronously)."""
        if url.startswith("data:"):
            if kind == "video":
                raise RequestError(f"{field}: videos are read from files; put the video under the media root "
                                   "and send its path", code="invalid_media")
            return self._data_url(url, kind, field)
        scheme = urlparse(url).scheme.lower() if ":" in url[:12] else ""
        if scheme in ("http", "https"):
            if not self.allow_remote:
                raise RequestError(f"{field}: remote media URLs are refused by this server (start it with "
                                   "--allow-remote-media to fetch them); send a data URL",
                                   status=403, code="remote_media_refused", type="permission_error")
            if kind == "video":
                raise RequestError(f"{field}: remote videos are not fetched; send a path under the media root",
                                   code="invalid_media")
            return Remote(url, field)
        if scheme == "file":
            parsed = urlparse(url)
            if parsed.netloc not in ("", "localhost"):
                raise RequestError(f"{field}: file:// URLs must name a local file", code="invalid_media")
            ref = unquote(parsed.path)
        elif scheme and len(scheme) > 1:
            raise RequestError(f"{field}: URL scheme {scheme[:10]!r} is not supported (data, file, http, https)",
                               code="invalid_media")
        else:
            ref = url
        if "\x00" in ref:
            raise RequestError(f"{field} {OUTSIDE}", status=403, code="outside_media_root", type="permission_error")
        if kind == "video":
            path = self.local(ref, kind, field)
            if not path.is_file():
                raise RequestError(f"{field}: no such readable file in the media root", status=404,
                                   code="media_not_found", type="not_found_error")
            return str(path)
        return self.read_local(ref, kind, field)

    async def fetch(self, remote: Remote) -> bytes:
        """GET an http(s) URL: no redirects, at most max_bytes, remote_timeout_s in all."""
        import asyncio

        import httpx

        async def _get() -> bytes:
            async with httpx.AsyncClient(follow_redirects=False, timeout=self.remote_timeout_s) as client:
                async with client.stream("GET", remote.url) as r:
                    if r.status_code != 200:
                        raise RequestError(f"{remote.field}: the remote server answered HTTP {r.status_code}",
                                           code="remote_media_failed")
                    buf = bytearray()
                    async for chunk in r.aiter_bytes():
                        buf += chunk
                        if len(buf) > self.max_bytes:
                            raise RequestError(f"{remote.field}: media larger than {self.max_bytes} bytes",
                                               status=413, code="media_too_large")
                    return bytes(buf)

        try:
            return await asyncio.wait_for(_get(), self.remote_timeout_s)
        except RequestError:
            raise
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise RequestError(f"{remote.field}: fetching the remote media timed out", status=400,
                               code="remote_media_failed") from None
        except httpx.HTTPError:
            raise RequestError(f"{remote.field}: the remote media could not be fetched", code="remote_media_failed") from None

    async def fetch_all(self, messages: list) -> None:
        """Replace every Remote reference in flex messages by its fetched bytes (in place)."""
        import asyncio

        parts = [p for m in messages for p in m["content"] if isinstance(p.get("url"), Remote)]
        if parts:
            data = await asyncio.gather(*(self.fetch(p["url"]) for p in parts))
            for p, d in zip(parts, data):
                p["url"] = d
