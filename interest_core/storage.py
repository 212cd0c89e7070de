"""Where data, runs and exports live: a local path or a URI of shared storage, through pyarrow.fs.

  out/data  /abs/out/data  file:///abs/out/data    the local filesystem
  s3://bucket/prefix                                S3, or an S3-compatible store at AWS_ENDPOINT_URL_S3
                                                    (else AWS_ENDPOINT_URL)
  gs://bucket/prefix                                Google Cloud Storage
  hdfs://namenode:8020/path                         HDFS (needs libhdfs and a Hadoop client on the machine)

Credentials and region come from the standard environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ~/.aws,
GOOGLE_APPLICATION_CREDENTIALS, ...). pyarrow's S3 client does not read the endpoint variables itself, so they are
passed as its endpoint_override here. A remote location is read through a local copy where a reader needs files
(`download`), and written locally then uploaded (`upload`); small objects (pointers, markers, JSON) are read and
written whole: a PUT is atomic on object stores, a local file is replaced with os.replace.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

REMOTE_SCHEMES = ("s3", "gs", "hdfs")
SCHEMES = ("file",) + REMOTE_SCHEMES
CACHE_ENV = "INTEREST_STORAGE_CACHE"


class StorageError(ValueError):
    """A location this version cannot read or write (unknown scheme, missing client)."""


def scheme(location: str | Path) -> str:
    """'' for a plain path, else the URI's scheme (lower case)."""
    s = str(location)
    return urlparse(s).scheme.lower() if "://" in s else ""


def is_remote(location: str | Path) -> bool:
    return scheme(location) not in ("", "file")


def local(location: str | Path) -> Path:
    """A plain path or file:// URI as an absolute local Path."""
    if scheme(location) == "file":
        return Path(urlparse(str(location)).path).resolve()
    if is_remote(location):
        raise StorageError(f"{location} is not a local path")
    return Path(location).resolve()


def normalize(location: str | Path) -> str | Path:
    """A local location as an absolute Path, a remote one as its URI without a trailing slash (checked)."""
    if not is_remote(location):
        _check_scheme(location)
        return local(location)
    filesystem_and_path(location)  # an unknown scheme or a missing client is said now
    return str(location).rstrip("/")


def _check_scheme(location: str | Path) -> None:
    if scheme(location) not in ("",) + SCHEMES:
        raise StorageError(f"{location}: scheme {scheme(location)!r} is not supported; give a local path or a URI "
                           f"with one of {', '.join(s + '://' for s in SCHEMES)} (e.g. s3://bucket/data)")


def s3_endpoint_url() -> str | None:
    """An S3-compatible store's endpoint: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (the AWS SDKs' names)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _s3_endpoint() -> tuple[str | None, str | None]:
    url = s3_endpoint_url()
    if not url:
        return None, None
    u = urlparse(url if "://" in url else f"https://{url}")
    return u.netloc, u.scheme


def _s3_options() -> tuple[tuple[str, str], ...]:
    """S3FileSystem's options from the environment. Keys given in the environment are passed explicitly, so the
    filesystem carries them when it is pickled to Ray workers and Ray Data tasks (processes that do not have this
    process's environment); without them the workers use their own chain (instance role, ~/.aws)."""
    endpoint, endpoint_scheme = _s3_endpoint()
    env = os.environ
    opts = {"region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ("us-east-1" if endpoint else None),
            "endpoint_override": endpoint, "scheme": endpoint_scheme}
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        opts |= {"access_key": env["AWS_ACCESS_KEY_ID"], "secret_key": env["AWS_SECRET_ACCESS_KEY"],
                 "session_token": env.get("AWS_SESSION_TOKEN")}
    return tuple(sorted((k, v) for k, v in opts.items() if v))


@functools.lru_cache(maxsize=16)
def _filesystem(kind: str, authority: str, s3_options: tuple[tuple[str, str], ...]) -> pafs.FileSystem:
    if kind == "s3":
        return pafs.S3FileSystem(**dict(s3_options))
    try:
        return pafs.FileSystem.from_uri(f"{kind}://{authority}/")[0]
    except (OSError, ImportError, ValueError) as exc:
        need = "JAVA_HOME, HADOOP_HOME and libhdfs" if kind == "hdfs" else "its client libraries and credentials"
        raise StorageError(f"{kind}://{authority}: cannot open ({str(exc).splitlines()[0]}); {kind}:// needs {need} "
                           f"on every machine that reads or writes it") from None


def filesystem_and_path(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of a location and the path inside it (bucket/key on object stores)."""
    _check_scheme(location)
    if not is_remote(location):
        return pafs.LocalFileSystem(), str(local(location))
    u = urlparse(str(location))
    kind = u.scheme.lower()
    if not u.netloc:
        raise StorageError(f"{location}: no bucket or host; e.g. {kind}://bucket/prefix")
    fs = _filesystem(kind, "" if kind == "s3" else u.netloc, _s3_options() if kind == "s3" else ())
    path = u.path.rstrip("/")
    return fs, (f"{u.netloc}{path}" if kind in ("s3", "gs") else path or "/")


def join(location: str | Path, *parts: str) -> str | Path:
    if not is_remote(location):
        return Path(location).joinpath(*parts)
    return "/".join([str(location).rstrip("/"), *parts])


def basename(location: str | Path) -> str:
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def parent(location: str | Path) -> str | Path:
    return str(location).rstrip("/").rsplit("/", 1)[0] if is_remote(location) else Path(location).parent


def exists(location: str | Path) -> bool:
    fs, path = filesystem_and_path(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(location: str | Path) -> bool:
    """A directory, or on an object store a prefix that holds objects."""
    fs, path = filesystem_and_path(location)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        return True
    return is_remote(location) and bool(fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)))


def children(location: str | Path) -> list[str]:
    """The names directly under a directory or prefix, sorted ([] when there is none)."""
    fs, path = filesystem_and_path(location)
    return sorted(basename(i.path) for i in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)))


def files(location: str | Path, suffix: str = "") -> tuple[pafs.FileSystem, list[str]]:
    """The filesystem and the sorted paths of the files directly under a directory or prefix ending with suffix."""
    fs, path = filesystem_and_path(location)
    return fs, [f"{path}/{n}" for n in children(location) if n.endswith(suffix) and not n.startswith((".", "_"))]


def read_text(location: str | Path) -> str:
    fs, path = filesystem_and_path(location)
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def write_text(location: str | Path, text: str) -> None:
    """Writes a small object whole: an atomic PUT on object stores; locally a temporary file replaced in one step."""
    if not is_remote(location):
        p = local(location)
        tmp = p.parent / f".{p.name}.{uuid.uuid4().hex[:8]}"
        tmp.write_text(text)
        os.replace(tmp, p)
        return
    fs, path = filesystem_and_path(location)
    with fs.open_output_stream(path) as f:
        f.write(text.encode())


def delete(location: str | Path) -> None:
    """Removes a file or a whole directory / prefix; nothing when it does not exist."""
    fs, path = filesystem_and_path(location)
    kind = fs.get_file_info(path).type
    if kind == pafs.FileType.File:
        fs.delete_file(path)
    elif kind == pafs.FileType.Directory or is_dir(location):
        fs.delete_dir(path)


def _copy(src: str, dst: str, src_fs: pafs.FileSystem, dst_fs: pafs.FileSystem) -> None:
    """One file or directory tree; a local destination's parent directory is made first (pyarrow does not)."""
    if dst_fs.type_name == "local":
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs)


def upload(local_dir: str | Path, location: str | Path, exclude: tuple[str, ...] = ()) -> None:
    """Copies a local directory's files to a location (top-level names in exclude are left out)."""
    fs, path = filesystem_and_path(location)
    for item in sorted(Path(local_dir).iterdir()):
        if item.name in exclude:
            continue
        _copy(str(item), f"{path}/{item.name}", pafs.LocalFileSystem(), fs)


def download(location: str | Path, local_dir: str | Path, exclude: tuple[str, ...] = ()) -> None:
    """Copies what a location holds into a local directory (top-level names starting with one in exclude are left
    out)."""
    fs, path = filesystem_and_path(location)
    Path(local_dir).mkdir(parents=True, exist_ok=True)
    for info in fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True)):
        rel = info.path[len(path):].lstrip("/")
        if info.type != pafs.FileType.File or (exclude and rel.split("/")[0].startswith(exclude)):
            continue
        _copy(info.path, str(Path(local_dir) / rel), fs, pafs.LocalFileSystem())


def cache_root() -> Path:
    """Where local copies of remote locations go: $INTEREST_STORAGE_CACHE, else ~/.cache/interest-trainer/storage."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "interest-trainer" / "storage")


def cache_dir(kind: str, location: str | Path) -> Path:
    """A local directory for one remote location: the same location, the same directory."""
    return cache_root() / kind / hashlib.sha256(str(location).encode()).hexdigest()[:16] / basename(location)


def immutable_copy(location: str | Path, kind: str) -> Path:
    """A local copy of a remote directory that never changes once complete (a published data version): downloaded
    once into a temporary directory, moved into place whole, reused after; a local location is itself."""
    if not is_remote(location):
        return local(location)
    target = cache_dir(kind, location)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        download(location, tmp)
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():  # another process did not finish it either
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


class WorkingCopy:
    """A local directory to work on a remote location in (a run, an export): `open()` fetches what the location
    holds (top-level names starting with one in skip left out), `save()` uploads the files added or changed since,
    the names in `last` after all others (a marker a reader looks for, e.g. run.json of a finished run)."""

    def __init__(self, location: str | Path, skip: tuple[str, ...] = ()):
        self.location, self.skip = str(location).rstrip("/"), skip
        self.path = cache_dir("work", self.location)
        self._before: dict[str, tuple[int, int]] = {}

    def open(self, fetch: bool = True) -> Path:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        if fetch and is_dir(self.location):
            download(self.location, self.path, exclude=self.skip)
        self._before = _files(self.path)
        return self.path

    def save(self, last: tuple[str, ...] = ()) -> list[str]:
        """Uploads what changed; returns the relative paths uploaded."""
        fs, root = filesystem_and_path(self.location)
        changed = sorted((k for k, v in _files(self.path).items() if self._before.get(k) != v),
                         key=lambda k: (k in last, k))
        for rel in changed:
            _copy(str(self.path / rel), f"{root}/{rel}", pafs.LocalFileSystem(), fs)
        self._before = _files(self.path)
        return changed
