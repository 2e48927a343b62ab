"""ZeroMQ CURVE keys: who may be a worker, and the encryption of everything between the two sides.

``awe keys --out DIR`` makes one folder that holds every key, laid out so that
each process is pointed at the part it needs with ``--curve-keys``::

    DIR/coordinator.key            the coordinator's public key
    DIR/coordinator.key_secret     its key pair (0600): stays on the coordinator's machine
    DIR/allowed_workers/NAME.key   the public key of each worker the coordinator accepts
    DIR/NAME/                      one folder per worker, to copy to the worker's machine:
        coordinator.key              the coordinator's public key (the worker checks it is talking to it)
        worker.key_secret            the worker's key pair (0600)

The coordinator (``--curve-keys DIR``) accepts a connection only from a key in
``allowed_workers`` (checked by a ZAP handler, :func:`start_authenticator`,
before any message is read). A worker (``--curve-keys DIR/NAME``) proves it
holds its secret key and checks the coordinator's. A worker's routing identity
starts with its public key (:func:`identity_for`), and the coordinator drops a
message whose identity does not start with the key its connection
authenticated with, so no peer can speak in another key's name. Several
worker processes may share a key: each has its own worker id after the key.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog
import zmq
import zmq.asyncio
import zmq.auth
from zmq.auth.asyncio import AsyncioAuthenticator

log = structlog.get_logger("awe.transport")

COORDINATOR_PUBLIC = "coordinator.key"
COORDINATOR_SECRET = "coordinator.key_secret"
ALLOWED_WORKERS = "allowed_workers"
WORKER_SECRET = "worker.key_secret"
WORKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A worker key's name: it names files and folders, so no slashes, no leading dot."""


class KeyFolderError(ValueError):
    """A ``--curve-keys`` folder that lacks a file, or a file that holds no usable key."""


@dataclass(frozen=True)
class ServerKeys:
    """What the coordinator needs: its own key pair and the folder of workers it accepts."""

    public: bytes
    secret: bytes
    allowed: Path


@dataclass(frozen=True)
class ClientKeys:
    """What a worker needs: its own key pair and the coordinator's public key."""

    public: bytes
    secret: bytes
    server_public: bytes

    def identity(self, worker_id: str) -> bytes:
        """The routing identity of the worker process ``worker_id`` holding these keys (see :func:`identity_for`)."""
        return identity_for(self.public, worker_id)


KEY_SEPARATOR = b"|"
"""Between the public key and the worker id in an identity: not a Z85 character, so the key ends there."""


def identity_for(public: bytes, worker_id: str) -> bytes:
    """``<public key>|<worker id>``: the key the coordinator checks, then the name that tells its processes apart.

    ZeroMQ identities are at most 255 bytes: a long worker id is cut.
    """
    return (public + KEY_SEPARATOR + worker_id.encode())[:255]


def key_of(identity: bytes) -> bytes:
    """The public key an identity claims (see :func:`identity_for`)."""
    return identity.split(KEY_SEPARATOR, 1)[0]


def load_server_keys(folder: str | os.PathLike[str]) -> ServerKeys:
    """The coordinator's keys from an ``awe keys`` folder; :class:`KeyFolderError` says what is missing."""
    root = Path(folder)
    public, secret = _key_pair(root / COORDINATOR_SECRET, "the coordinator's key pair")
    allowed = root / ALLOWED_WORKERS
    if not allowed.is_dir():
        raise KeyFolderError(
            f"{allowed} is missing: it holds the public keys of the workers the coordinator accepts "
            f"(awe keys --out {root} makes it)"
        )
    if not zmq.auth.load_certificates(allowed):
        log.warning("no_worker_keys", folder=str(allowed), hint=f"awe keys --out {root} --add-worker NAME")
    return ServerKeys(public, secret, allowed)


def load_client_keys(folder: str | os.PathLike[str]) -> ClientKeys:
    """A worker's keys from its folder (``DIR/NAME`` of an ``awe keys`` folder)."""
    root = Path(folder)
    if (root / COORDINATOR_SECRET).exists() and not (root / WORKER_SECRET).exists():
        names = sorted(p.name for p in root.iterdir() if (p / WORKER_SECRET).exists())
        hint = f" (for instance {root / names[0]})" if names else ""
        raise KeyFolderError(f"{root} is the coordinator's key folder: give a worker its own folder inside it{hint}")
    public, secret = _key_pair(root / WORKER_SECRET, "this worker's key pair")
    server_public = _public_key(root / COORDINATOR_PUBLIC, "the coordinator's public key")
    return ClientKeys(public, secret, server_public)


def worker_folders(folder: str | os.PathLike[str]) -> list[Path]:
    """The worker folders of a key folder whose keys the coordinator accepts, by name (for ``awe up``)."""
    root = Path(folder)
    load_server_keys(root)  # the folder is a coordinator's, or this says what is wrong with it
    allowed = zmq.auth.load_certificates(root / ALLOWED_WORKERS)
    found = []
    for candidate in sorted(root.iterdir(), key=lambda p: p.name):
        if (candidate / WORKER_SECRET).is_file() and load_client_keys(candidate).public in allowed:
            found.append(candidate)
    return found


def _key_pair(path: Path, what: str) -> tuple[bytes, bytes]:
    public, secret = _read(path, what)
    if secret is None:
        raise KeyFolderError(f"{path} holds no secret key: it must be {what}, as awe keys wrote it")
    return public, secret


def _public_key(path: Path, what: str) -> bytes:
    return _read(path, what)[0]


def _read(path: Path, what: str) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise KeyFolderError(f"{path} is missing: it is {what} (awe keys --out DIR writes it)")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeyFolderError(f"{path} is not a key file ({exc}): write it again with awe keys") from None
    if len(public) != 40 or (secret is not None and len(secret) != 40):
        raise KeyFolderError(f"{path} holds a key of the wrong length: write it again with awe keys")
    return public, secret


# -- making keys -------------------------------------------------------------------------------


def create_key_folder(out: str | os.PathLike[str], workers: int) -> list[str]:
    """A new key folder: the coordinator's key pair and ``workers`` worker key pairs (``worker-1``...).

    Refuses a folder that already has a coordinator key (new keys would lock out every worker
    that has the old ones). Returns the names of the workers' folders.
    """
    root = Path(out)
    if (root / COORDINATOR_SECRET).exists():
        raise KeyFolderError(
            f"{root} already holds a coordinator key; add a worker with awe keys --out {root} --add-worker NAME, "
            "or choose another folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / ALLOWED_WORKERS).mkdir(exist_ok=True)
    with _private_files():
        zmq.auth.create_certificates(root, "coordinator")
    _restrict(root / COORDINATOR_SECRET)
    names = [f"worker-{i}" for i in range(1, workers + 1)]
    for name in names:
        add_worker_key(root, name)
    return names


def add_worker_key(out: str | os.PathLike[str], name: str) -> Path:
    """A key pair for one more worker: its folder ``out/name``, its public key in ``allowed_workers``.

    A running coordinator accepts the new key at once (its ZAP handler reads the folder again
    for a key it does not know).
    """
    root = Path(out)
    if not WORKER_NAME.fullmatch(name) or name == ALLOWED_WORKERS:
        raise KeyFolderError(
            f"{name!r} cannot name a worker key: use letters, digits, '.', '_' or '-' (up to 64), like worker-3"
        )
    server_public = _public_key(root / COORDINATOR_PUBLIC, "the coordinator's public key")
    folder = root / name
    if folder.exists():
        raise KeyFolderError(f"{folder} already exists: choose another name, or delete it first")
    folder.mkdir(mode=0o700)
    with _private_files():
        public_file, secret_file = zmq.auth.create_certificates(folder, "worker")
    _restrict(Path(secret_file))
    Path(public_file).replace(root / ALLOWED_WORKERS / f"{name}.key")
    _write_public(folder / COORDINATOR_PUBLIC, server_public)
    return folder


def _write_public(path: Path, public: bytes) -> None:
    path.write_text(
        "#   ZeroMQ CURVE public key of an awe coordinator, written by awe keys\n"
        f'curve\n    public-key = "{public.decode("ascii")}"\n',
        encoding="utf-8",
    )


@contextlib.contextmanager
def _private_files() -> Iterator[None]:
    """Files created meanwhile are readable by their owner only, from the start (no window at 0644)."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _restrict(path: Path) -> None:
    path.chmod(0o600)


# -- the coordinator's side -----------------------------------------------------------------------


class AllowedWorkers:
    """The ZAP handler's question, "may this key connect?", answered from the ``allowed_workers`` folder.

    The folder is read again when a key is not known yet, so a key added with
    ``awe keys --add-worker`` is accepted without restarting the coordinator. A key removed from
    the folder is refused from the next connection on (a connected worker keeps its connection
    until it drops).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._keys = self._load()

    def _load(self) -> frozenset[bytes]:
        try:
            return frozenset(zmq.auth.load_certificates(self.folder))
        except (OSError, ValueError) as exc:
            log.error("worker_keys_unreadable", folder=str(self.folder), error=str(exc))
            return frozenset()

    def callback(self, domain: str, key: bytes) -> bool:
        if key not in self._keys:
            self._keys = self._load()
        if key in self._keys:
            return True
        log.warning(
            "worker_refused",
            reason="its CURVE key is not in the allowed workers",
            key=key.decode("ascii", errors="replace"),
            folder=str(self.folder),
        )
        return False


def start_authenticator(context: zmq.asyncio.Context, keys: ServerKeys) -> AsyncioAuthenticator:
    """Answer the context's ZAP requests: a CURVE client is let in only if its key is allowed.

    Started before the socket binds, so that no handshake can happen without it (ZeroMQ lets
    every CURVE client in when no ZAP handler is running). Needs a running event loop.
    """
    authenticator = AsyncioAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve_callback("*", AllowedWorkers(keys.allowed))
    return authenticator
