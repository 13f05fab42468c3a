"""One image to analyse, from a local file or an S3 object, read and decoded at most once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from rudolph.errors import ImageError
from rudolph.images import DecodedImage, decode


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str
    version_id: str | None = None
    size: int | None = None  # bytes, when known from the event or listing

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class ObjectAttributes:
    """What S3 said about the object it returned: the record keeps these, so the download
    that read the bytes also answers what a HEAD would."""

    etag: str | None = None
    size: int | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    version_id: str | None = None


@dataclass(frozen=True)
class S3Object:
    """An object's bytes and the attributes S3 returned with them."""

    body: bytes
    attributes: ObjectAttributes


#: Reads an image's bytes; an S3 download also returns the object's attributes.
Fetch: TypeAlias = Callable[[], "bytes | S3Object"]


@dataclass
class ImageInput:
    """The bytes of one image and, for S3 objects, where they live.

    Backends that can read S3 themselves (Rekognition) use `s3` and never download; the
    others call `data()` or `decoded()`, which fetch and decode once however often called.
    """

    name: str
    s3: S3Location | None = None
    #: The object's attributes, once a download returned them.
    attributes: ObjectAttributes | None = None
    _fetch: Fetch | None = field(default=None, repr=False)
    _data: bytes | None = field(default=None, repr=False)
    #: Bytes to pixels; the fleet's shares the work between the processes of a host.
    _decode: Callable[[bytes], DecodedImage] = field(default=decode, repr=False)
    #: Pixels another process of the host already decoded, if any: then the bytes are never
    #: read here (nor the attributes, which the task that downloaded them reports).
    _decoded_elsewhere: Callable[[], DecodedImage | None] | None = field(default=None, repr=False)
    _decoded: DecodedImage | ImageError | None = field(default=None, repr=False)
    #: Forms a backend derived from this image (e.g. re-encoded bytes), so the three features
    #: of one image share the work.
    prepared: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_path(
        cls, path: str | Path, decoder: Callable[[bytes], DecodedImage] = decode
    ) -> ImageInput:
        path = Path(path)
        return cls(name=str(path), _fetch=path.read_bytes, _decode=decoder)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> ImageInput:
        return cls(name=name, _data=data)

    @classmethod
    def from_s3(
        cls,
        location: S3Location,
        fetch: Fetch,
        decoder: Callable[[bytes], DecodedImage] = decode,
        decoded_elsewhere: Callable[[], DecodedImage | None] | None = None,
    ) -> ImageInput:
        return cls(
            name=location.uri,
            s3=location,
            _fetch=fetch,
            _decode=decoder,
            _decoded_elsewhere=decoded_elsewhere,
        )

    def data(self) -> bytes:
        if self._data is None:
            assert self._fetch is not None, "ImageInput needs bytes or a way to fetch them"
            fetched = self._fetch()
            if isinstance(fetched, S3Object):
                self.attributes = fetched.attributes
                fetched = fetched.body
            self._data = fetched
        return self._data

    def decoded(self) -> DecodedImage:
        if self._decoded is None and self._decoded_elsewhere is not None:
            self._decoded = self._decoded_elsewhere()
        # A broken image fails every feature the same way: decode once, remember the error.
        if self._decoded is None:
            try:
                self._decoded = self._decode(self.data())
            except ImageError as exc:
                self._decoded = exc
        if isinstance(self._decoded, ImageError):
            raise self._decoded
        return self._decoded

    def dimensions(self) -> tuple[int, int] | None:
        """(width, height) of the upright original, if a backend decoded the image."""
        if isinstance(self._decoded, DecodedImage):
            return self._decoded.width, self._decoded.height
        return None
