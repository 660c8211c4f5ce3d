"""Results where Ray writes them: a local folder, or a storage URI (s3://, gs://, any filesystem
pyarrow.fs resolves) read as one.

`location(text)` gives a `pathlib.Path` for a local folder, else a `RemotePath`: the few
Path methods the readers use (name, parent, `/`, exists, is_file, is_dir, iterdir, glob,
rglob, read_text), each a listing or a read through pyarrow.fs. Nothing is written back to
the storage. `local_file` hands a file to code that opens it (torch.load, SQLite): a local
path as it is, a remote object fetched whole into a local cache keyed by its URI, size and
modification time, so a second read of the same object costs no transfer and a rewritten
object is fetched again.

Credentials and endpoints are pyarrow's, as Ray Tune's are: the AWS_* variables (an
S3-compatible server's address in AWS_ENDPOINT_URL_S3), GOOGLE_APPLICATION_CREDENTIALS.
pyarrow is imported only when a URI is given (fer itself runs on torch alone); light to import.
"""
from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import shutil
from pathlib import Path

from fer.errors import FerError

# URI schemes that name a database (SQLAlchemy URLs), not a filesystem: an Optuna study's storage
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql", "cockroachdb")


def is_local(location: str | Path) -> bool:
    """A local (or mounted) path, as opposed to a URI."""
    return "://" not in str(location)


def is_database(location: str) -> bool:
    """An SQLAlchemy URL (postgresql://, sqlite:///...), as opposed to a folder or a storage URI."""
    scheme = str(location).split("://", 1)[0] if not is_local(location) else ""
    return scheme.split("+", 1)[0].lower() in DATABASE_SCHEMES


class RemoteError(FerError):
    """A storage URI that cannot be listed or read (no such bucket, no credentials, no server)."""


class RemotePath:
    """A file or folder at a storage URI, read through pyarrow.fs. Deliberately not os.PathLike:
    code that would open() it must ask `local_file` for a copy first."""

    def __init__(self, uri: str, _fs=None, _path: str | None = None):
        self.uri = uri.rstrip("/")
        if _fs is None:
            import pyarrow.fs

            try:
                _fs, _path = pyarrow.fs.FileSystem.from_uri(self.uri)
            except (pyarrow.ArrowException, OSError, ValueError) as e:
                raise RemoteError(f"{uri}: cannot be opened ({_first_line(e)})") from None
        self.fs, self.path = _fs, _path.rstrip("/")

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"RemotePath({self.uri!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RemotePath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __lt__(self, other: RemotePath) -> bool:
        return self.uri < other.uri

    def __truediv__(self, part: str) -> RemotePath:
        return RemotePath(f"{self.uri}/{part}", self.fs, f"{self.path}/{part}")

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self.uri.rsplit("/", 1)[0], self.fs, posixpath.dirname(self.path))

    def resolve(self) -> RemotePath:
        return self

    def _child(self, full_path: str) -> RemotePath:
        """The RemotePath of `full_path`, a path inside this one as the filesystem lists it."""
        rel = full_path[len(self.path):].lstrip("/")
        return RemotePath(f"{self.uri}/{rel}", self.fs, f"{self.path}/{rel}")

    def info(self):
        try:
            return self.fs.get_file_info(self.path)
        except OSError as e:
            raise RemoteError(f"{self.uri}: cannot be read ({_first_line(e)})") from None

    def exists(self) -> bool:
        import pyarrow.fs

        return self.info().type != pyarrow.fs.FileType.NotFound

    def is_file(self) -> bool:
        import pyarrow.fs

        return self.info().type == pyarrow.fs.FileType.File

    def is_dir(self) -> bool:
        import pyarrow.fs

        return self.info().type == pyarrow.fs.FileType.Directory

    def _list(self, recursive: bool) -> list:
        import pyarrow.fs

        try:
            return self.fs.get_file_info(pyarrow.fs.FileSelector(self.path, allow_not_found=True,
                                                                 recursive=recursive))
        except OSError as e:
            raise RemoteError(f"{self.uri}: cannot be listed ({_first_line(e)})") from None

    def iterdir(self) -> list[RemotePath]:
        return [self._child(i.path) for i in self._list(False)]

    def glob(self, pattern: str) -> list[RemotePath]:
        """Children whose name matches `pattern` (one level, as Path.glob of a plain pattern)."""
        return [self._child(i.path) for i in self._list(False) if fnmatch.fnmatch(i.base_name, pattern)]

    def rglob(self, pattern: str) -> list[RemotePath]:
        """Everything below whose name matches `pattern`: one recursive listing."""
        return [self._child(i.path) for i in self._list(True) if fnmatch.fnmatch(i.base_name, pattern)]

    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.path) as f:
                return f.readall()
        except OSError as e:
            raise RemoteError(f"{self.uri}: cannot be read ({_first_line(e)})") from None

    def read_text(self, errors: str = "strict") -> str:
        return self.read_bytes().decode("utf-8", errors=errors)


def location(text: str | Path | RemotePath) -> Path | RemotePath:
    """A local folder or file as a Path, a storage URI as a RemotePath."""
    if isinstance(text, (Path, RemotePath)):
        return text
    return Path(text) if is_local(text) else RemotePath(str(text))


def cache_root() -> Path:
    from fer.data.cache import default_cache_dir

    return default_cache_dir() / "remote"


def local_file(path: str | Path | RemotePath) -> Path:
    """A path that open() reads: a local one as it is; a remote object's copy in the cache
    (fetched once per URI, size and modification time; a partial fetch never stays)."""
    path = location(path)
    if isinstance(path, Path):
        return path
    import pyarrow.fs

    from fer.atomic import write_atomic
    from fer.data.cache import evict, used

    info = path.info()
    if info.type != pyarrow.fs.FileType.File:
        raise RemoteError(f"{path.uri}: no such file")
    key = hashlib.sha256(f"{path.uri}\0{info.size}\0{info.mtime_ns}".encode()).hexdigest()[:32]
    copy = cache_root() / key / path.name
    if copy.is_file() and copy.stat().st_size == info.size:
        used(copy)
        return copy

    def fetch(f) -> None:
        try:
            with path.fs.open_input_stream(path.path) as src:
                shutil.copyfileobj(src, f, 1 << 22)
        except OSError as e:
            raise RemoteError(f"{path.uri}: cannot be fetched ({_first_line(e)})") from None

    write_atomic(copy, fetch)
    evict(keep=copy.parent)
    return copy


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else e.__class__.__name__
