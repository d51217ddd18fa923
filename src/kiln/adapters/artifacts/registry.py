"""``Registry``: an OCI distribution API client over httpx.

Endpoints (OCI distribution spec v1.1, "Pull", "Push"): ``HEAD/GET
/v2/<name>/blobs/<digest>``, ``POST /v2/<name>/blobs/uploads/`` then either one
``PUT <location>?digest=`` with the whole body (monolithic) or ``PATCH``es with
``Content-Range`` followed by an empty ``PUT`` (chunked), ``PUT/GET/HEAD
/v2/<name>/manifests/<reference>``.

Tags are immutable on the client side: before a manifest is put under a tag,
the tag is resolved; if it names another digest the push is refused and the
error names both. That check and the put are two requests, so two clients
racing can still both win; a registry with server-side immutable tags closes
that window. Every transport or HTTP failure becomes a kiln error here.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Generator, Iterator
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from kiln.core.artifacts.oci import MEDIA_INDEX, MEDIA_MANIFEST
from kiln.core.digest import Digest, digest_bytes, is_digest
from kiln.errors import (
    IntegrityError,
    InvalidInput,
    KilnError,
    NotFound,
    Permanent,
    Refused,
    Temporary,
)
from kiln.ports.artifacts import BlobInfo

_FIELD = re.compile(r'(\w+)="([^"]*)"')
MONOLITHIC_LIMIT = 64 << 20
CHUNK = 16 << 20
_ACCEPT = ", ".join(
    [
        MEDIA_MANIFEST,
        MEDIA_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


class RegistryAuth(httpx.Auth):
    """Docker/OCI registry authentication: Basic, or Bearer tokens from the realm.

    On a 401 the challenge (``WWW-Authenticate``) decides: ``Basic`` resends with
    the credentials; ``Bearer realm=…,service=…,scope=…`` fetches a token from the
    realm (with the credentials if any, anonymously otherwise) and resends. The
    last token is then sent up front, so later requests, including uploads
    whose streamed bodies cannot be replayed, do not need a second round trip.
    Credentials and tokens are never put in messages or logs.
    """

    requires_response_body = True

    def __init__(self, credentials: tuple[str, str] | None) -> None:
        self._credentials = credentials
        self._header: str | None = None
        if credentials is not None:
            self._header = _basic(credentials)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._header is not None:
            request.headers["Authorization"] = self._header
        response = yield request
        if response.status_code != 401:
            return
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic" and self._credentials is not None:
            self._header = _basic(self._credentials)
        elif scheme.lower() == "bearer":
            fields = _challenge_fields(params)
            realm = fields.pop("realm", "")
            if not realm:
                return
            token_request = httpx.Request("GET", realm, params=fields)
            if self._credentials is not None:
                token_request.headers["Authorization"] = _basic(self._credentials)
            token_response = yield token_request
            if token_response.status_code != 200:
                return
            try:
                body = token_response.json()
            except ValueError:
                return
            token = (
                body.get("token") or body.get("access_token") if isinstance(body, dict) else None
            )
            if not isinstance(token, str) or not token:
                return
            self._header = f"Bearer {token}"
        else:
            return
        if isinstance(request.stream, httpx.ByteStream) or request.method in {"GET", "HEAD"}:
            request.headers["Authorization"] = self._header
            yield request


def _basic(credentials: tuple[str, str]) -> str:
    user, password = credentials
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _challenge_fields(params: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _FIELD.finditer(params)}


class RegistryClient:
    def __init__(
        self,
        client: httpx.Client,
        *,
        base: str,
        chunk_size: int | None = None,
    ) -> None:
        self._client = client
        self._base = base.rstrip("/")
        self._chunk = chunk_size

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        insecure: bool = False,
        chunk_size: int | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> RegistryClient:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise InvalidInput(
                f"registry {url!r} is not an http(s) address",
                hint="for example http://127.0.0.1:5000 or registry.example.com",
            )
        if parts.username or parts.password:
            raise InvalidInput(
                "put no credentials in the registry address", hint="they would end up in logs"
            )
        client = httpx.Client(
            timeout=httpx.Timeout(30.0, read=300.0),
            verify=not insecure,
            follow_redirects=True,
            auth=RegistryAuth(credentials),
        )
        return cls(client, base=f"{parts.scheme}://{parts.netloc}", chunk_size=chunk_size)

    def close(self) -> None:
        self._client.close()

    # --- plumbing ------------------------------------------------------------------

    def _url(self, repository: str, *rest: str) -> str:
        return "/".join([self._base, "v2", repository, *rest])

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        ok: tuple[int, ...],
        headers: dict[str, str] | None = None,
        content: bytes | Iterator[bytes] | None = None,
    ) -> httpx.Response:
        try:
            response = self._client.request(method, url, headers=headers, content=content)
        except httpx.TimeoutException:
            raise Temporary(f"the registry did not answer in time ({what})", delay=5.0) from None
        except httpx.TransportError as exc:
            raise Temporary(
                f"cannot reach the registry at {self._base} ({what}): {exc}",
                delay=5.0,
                hint="check the address and that the registry is running",
            ) from None
        if response.status_code in ok:
            return response
        raise _http_error(response, what)

    # --- blobs ---------------------------------------------------------------------

    def has_blob(self, repository: str, digest: Digest) -> bool:
        response = self._send(
            "HEAD", self._url(repository, "blobs", digest), what="blob check", ok=(200, 404)
        )
        return response.status_code == 200

    def push_blob(self, repository: str, info: BlobInfo, chunks: Iterator[bytes]) -> None:
        started = self._send(
            "POST",
            self._url(repository, "blobs", "uploads") + "/",
            what=f"start upload of {info.digest}",
            ok=(202,),
        )
        location = self._location(started)
        try:
            limit = self._chunk if self._chunk is not None else MONOLITHIC_LIMIT
            if info.size <= limit:
                self._send(
                    "PUT",
                    _with_query(location, digest=info.digest),
                    what=f"upload of {info.digest}",
                    ok=(201,),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(info.size),
                    },
                    content=b"".join(chunks) if info.size <= 1 << 20 else chunks,
                )
                return
            location = self._patch_all(location, info, chunks)
            self._send(
                "PUT",
                _with_query(location, digest=info.digest),
                what=f"finish upload of {info.digest}",
                ok=(201,),
                headers={"Content-Length": "0"},
            )
        except BaseException:
            with contextlib.suppress(KilnError):
                self._send("DELETE", location, what="cancel upload", ok=(204, 404, 405))
            raise

    def _patch_all(self, location: str, info: BlobInfo, chunks: Iterator[bytes]) -> str:
        size = self._chunk or CHUNK
        offset = 0
        for pending in _rechunk(chunks, size):
            end = offset + len(pending) - 1
            response = self._send(
                "PATCH",
                location,
                what=f"upload of {info.digest} at byte {offset}",
                ok=(202,),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{end}",
                    "Content-Length": str(len(pending)),
                },
                content=pending,
            )
            location = self._location(response)
            offset = end + 1
        return location

    def _location(self, response: httpx.Response) -> str:
        location = str(response.headers.get("Location") or "")
        if not location:
            raise Permanent("the registry answered an upload without a Location header")
        return urljoin(self._base + "/", location)

    @contextlib.contextmanager
    def pull_blob(self, repository: str, digest: Digest) -> Iterator[Iterator[bytes]]:
        url = self._url(repository, "blobs", digest)
        try:
            with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    response.read()
                    raise _http_error(response, f"download of {digest}")
                yield response.iter_bytes(1 << 20)
        except httpx.TransportError as exc:
            raise Temporary(
                f"download of {digest} from {self._base} failed: {exc}", delay=5.0
            ) from None

    # --- manifests -----------------------------------------------------------------

    def resolve_tag(self, repository: str, tag: str) -> Digest | None:
        response = self._send(
            "HEAD",
            self._url(repository, "manifests", tag),
            what=f"lookup of tag {tag}",
            ok=(200, 404),
            headers={"Accept": _ACCEPT},
        )
        if response.status_code == 404:
            return None
        found = response.headers.get("Docker-Content-Digest", "")
        if is_digest(found):
            return Digest(found)
        data, _ = self.get_manifest(repository, tag)
        return digest_bytes(data)

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> Digest:
        digest = digest_bytes(data)
        if is_digest(reference):
            if reference != digest:
                raise InvalidInput(f"manifest bytes hash to {digest}, not {reference}")
        else:
            existing = self.resolve_tag(repository, reference)
            if existing == digest:
                return digest
            if existing is not None:
                raise Refused(
                    f"tag {repository}:{reference} at {self._base} already points at "
                    f"{existing}; refusing to move it to {digest}",
                    hint="tags never move: push under a new tag, or refer to the digest",
                )
        response = self._send(
            "PUT",
            self._url(repository, "manifests", reference),
            what=f"upload of manifest {digest}",
            ok=(201,),
            headers={"Content-Type": media_type},
            content=data,
        )
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise IntegrityError(f"the registry stored manifest {answered}, kiln sent {digest}")
        return digest

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        response = self._send(
            "GET",
            self._url(repository, "manifests", reference),
            what=f"download of manifest {reference}",
            ok=(200,),
            headers={"Accept": _ACCEPT},
        )
        data = response.content
        if is_digest(reference) and digest_bytes(data) != reference:
            raise IntegrityError(
                f"the registry served manifest bytes hashing to {digest_bytes(data)} "
                f"for {reference}"
            )
        media = response.headers.get("Content-Type", MEDIA_MANIFEST).split(";")[0].strip()
        return data, media

    # --- referrers (distribution spec v1.1) ------------------------------------------

    def referrers(self, repository: str, subject: Digest) -> bytes | None:
        """The referrers API's image index for ``subject``; ``None`` when unsupported.

        A registry without the API answers 404 (Debian's docker-registry 2.8 does),
        or something other than an OCI image index: both mean "use the tag schema".
        """
        response = self._send(
            "GET",
            self._url(repository, "referrers", subject),
            what=f"referrers of {subject}",
            ok=(200, 404, 405),
            headers={"Accept": MEDIA_INDEX},
        )
        media = response.headers.get("Content-Type", "").split(";")[0].strip()
        if response.status_code != 200 or media != MEDIA_INDEX:
            return None
        return response.content

    def replace_tag(
        self,
        repository: str,
        tag: str,
        data: bytes,
        media_type: str,
        *,
        expected: Digest | None,
    ) -> Digest:
        """Move ``tag`` to ``data`` only if it still points at ``expected`` (None: absent).

        For the referrers tag schema's index, the one tag kiln moves. The check
        and the put are two requests: two pushers racing can lose an entry, which
        the next push of that attestation adds again.
        """
        digest = digest_bytes(data)
        current = self.resolve_tag(repository, tag)
        if current == digest:
            return digest
        if current != expected:
            raise Temporary(f"tag {repository}:{tag} changed while kiln updated it", delay=1.0)
        self._send(
            "PUT",
            self._url(repository, "manifests", tag),
            what=f"upload of index {digest} under {tag}",
            ok=(201,),
            headers={"Content-Type": media_type},
            content=data,
        )
        return digest


def _rechunk(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for data in chunks:
        buffer += data
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _with_query(location: str, **params: str) -> str:
    separator = "&" if "?" in location else "?"
    return location + separator + urlencode(params)


def _http_error(response: httpx.Response, what: str) -> KilnError:
    detail = ""
    try:
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors:
            detail = "; ".join(
                f"{e.get('code', '')}: {e.get('message', '')}"
                for e in errors
                if isinstance(e, dict)
            )
    except ValueError:
        detail = response.text[:200]
    message = f"the registry refused the {what}: HTTP {response.status_code} {detail}".strip()
    status = response.status_code
    if status in {401, 403}:
        return Refused(message, hint="this client has no credentials for that registry")
    if status == 404:
        return NotFound(message)
    if status == 429 or status >= 500:
        return Temporary(message, delay=5.0)
    return Permanent(message)
