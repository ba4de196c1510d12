"""Where the embedded Redis listens, and whether what is there can be trusted.

Whatever answers on the socket gets the jobs, so the socket lives in a directory
only this user can enter (`data_dir/redis`, or for a long data-directory path a
per-user directory under XDG_RUNTIME_DIR or /tmp), and before it is used the
directory and anything already at the socket's path must be this user's
(`check_socket_is_ours`): a Redis that another local user started there is
refused, never joined.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import stat
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

# sun_path is 108 bytes on Linux (104 on macOS); keep a margin.
_MAX_SOCKET_PATH = 100


class EmbeddedRedisError(RuntimeError):
    pass


def socket_path_for(data_dir: Path) -> Path:
    """Where the embedded Redis listens for this data directory.

    Unix socket paths are short, so a deep data directory gets its socket in a
    directory of this user's under the runtime (else temporary) directory, named
    after the user and the data directory; every process on that data directory
    computes the same path. `check_socket_is_ours` before using it.
    """
    preferred = data_dir.resolve() / "redis" / "redis.sock"
    if len(str(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return _runtime_dir() / f"stylebot-{os.geteuid()}-{digest}" / "redis.sock"


def _runtime_dir() -> Path:
    """The user's own XDG_RUNTIME_DIR (systemd's /run/user/UID) when there is one, else
    the temporary directory. One inherited from another user (sudo) is not ours."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and len(runtime) < _MAX_SOCKET_PATH - 50:
        with contextlib.suppress(OSError):
            info = os.stat(runtime)
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
                return Path(runtime)
    return Path(tempfile.gettempdir())


def check_socket_is_ours(socket_path: Path, *, create: bool = False) -> None:
    """Refuse (`EmbeddedRedisError`) a socket directory, or a file at the socket's path,
    that belongs to another user: what listens there would receive the jobs.

    The directory must be a real directory (not a symlink) of this user. `create`
    (the process about to start or join the server) makes it 0700 if missing and
    tightens one of ours that others may enter; readers (doctor, status) change nothing.
    """
    directory = socket_path.parent
    if create:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return  # nothing there to trust
    me = os.geteuid()
    if not stat.S_ISDIR(info.st_mode):
        raise EmbeddedRedisError(
            f"{directory} should be a directory for the Redis socket but is not "
            "(a symlink?); remove it"
        )
    if info.st_uid != me:
        raise EmbeddedRedisError(
            f"{directory} belongs to uid {info.st_uid}, not to this user (uid {me}): "
            "its Redis socket is not to be trusted; remove the directory"
        )
    if create and stat.S_IMODE(info.st_mode) & 0o077:
        directory.chmod(0o700)
        log.warning("%s was open to other users; it is now 0700", directory)
    try:
        socket_info = os.lstat(socket_path)
    except FileNotFoundError:
        return
    if socket_info.st_uid != me:
        raise EmbeddedRedisError(
            f"{socket_path} belongs to uid {socket_info.st_uid}, not to this user "
            f"(uid {me}): another user's server is not used; remove it"
        )


def is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def answers_ping(path: Path, timeout: float = 0.5) -> bool:
    if not is_socket(path):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            # An error reply is a server too: on a full disk Redis answers even
            # PING with -MISCONF, and is still serving the processes using it.
            return sock.recv(16)[:1] in (b"+", b"-")
    except OSError:
        return False
