"""One writer per run directory, and ``--overwrite`` that swaps only after success.

:func:`writing_run` holds a lock (``.RUN.lock`` beside the directory, an ``flock`` the kernel
drops when its process dies, so a stale lock is simply taken over) for as long as a fit writes;
a second writer gets one line naming the holder. ``--overwrite`` writes the new run beside the
old one (``.RUN.new-PID``) and swaps the two only once the new fit has succeeded; a failed or
interrupted fit leaves the old run as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from probgen.atomic_files import file_mode
from probgen.errors import ProbgenError, RunError


def _sibling(path: Path, tag: str) -> Path:
    return path.parent / f".{path.name}.{tag}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class RunLock:
    """An exclusive lock on run directory ``path`` (the file ``.NAME.lock`` beside it).

    The lock is an ``flock`` on that file: the kernel releases it when the holder exits, however
    it exits, so a lock file left by a dead process is taken over. The file names its holder
    (pid, host, start time) for the message the next writer gets. Where ``flock`` is not
    supported the holder's pid is checked instead.
    """

    def __init__(self, path: str | Path) -> None:
        self.run_path = Path(path)
        self.path = _sibling(self.run_path, "lock")
        self._fd: int | None = None

    def _holder(self) -> str:
        try:
            text = self.path.read_text().strip()
        except OSError:
            text = ""
        return text or "another process"

    def acquire(self, what: str = "probgen fit") -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            fcntl = None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, file_mode())
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        raise RunError(
                            f"{self.run_path} is being written by {self._holder()}; wait for it "
                            "to finish or choose another -o"
                        ) from None
                    except OSError:  # no flock here (some network file systems): pid check
                        self._check_pid()
                else:  # pragma: no cover
                    self._check_pid()
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # the holder removed the file as we opened it: take the new one
                    os.close(fd)
                    continue
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                os.ftruncate(fd, 0)
                os.write(
                    fd,
                    f"{what} (pid {os.getpid()} on {socket.gethostname()}, since {stamp})".encode(),
                )
                self._fd = fd
                return self
            except BaseException:
                if self._fd != fd:
                    os.close(fd)
                raise

    def _check_pid(self) -> None:
        match = re.search(r"pid (\d+) on (\S+?),", self._holder())
        if match and match.group(2) == socket.gethostname():
            pid = int(match.group(1))
            if pid != os.getpid() and _pid_alive(pid):
                raise RunError(
                    f"{self.run_path} is being written by {self._holder()}; wait for it to "
                    "finish or choose another -o"
                )

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _recover(path: Path) -> None:
    """Finish or undo what a writer that died left (called with the lock held).

    A new run still being written (``.NAME.new-*``) is discarded. An old run moved aside for the
    swap (``.NAME.old-*``) is put back if the new one never arrived, else removed.
    """
    for staged in path.parent.glob(f".{_glob_escape(path.name)}.new-*"):
        shutil.rmtree(staged, ignore_errors=True)
    for old in sorted(path.parent.glob(f".{_glob_escape(path.name)}.old-*")):
        if not path.exists():
            os.rename(old, path)
        else:
            shutil.rmtree(old, ignore_errors=True)


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _prepare_directory(path: Path) -> list[Path]:
    """``path`` can hold a run: an existing folder, or one that can be made (one line if not)."""
    if path.exists() and not path.is_dir():
        raise RunError(f"-o {path} is a file, not a run directory")
    try:
        made = []
        for folder in reversed(path.absolute().parents):
            if folder.exists() and not folder.is_dir():
                raise RunError(f"-o {path}: {folder} is a file, not a folder")
            if not folder.exists():
                folder.mkdir()
                made.append(folder)
    except FileExistsError:
        raise RunError(f"-o {path}: {path.parent} is a file, not a folder") from None
    except OSError as exc:
        raise RunError(f"-o {path}: cannot create {path.parent} ({exc.strerror})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise RunError(f"-o {path}: cannot write in {path.parent} (permission denied)")
    if path.exists() and not os.access(path, os.W_OK | os.X_OK):
        raise RunError(f"-o {path}: cannot write in {path} (permission denied)")
    return made


def _remove_unused(folders: list[Path]) -> None:
    """Remove the folders made for a run that never wrote anything (innermost first)."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def _swap(staged: Path, path: Path) -> None:
    """Put the finished run ``staged`` at ``path``; the old run there is removed only after."""
    old = _sibling(path, f"old-{os.getpid()}")
    os.rename(path, old)
    try:
        os.rename(staged, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def writing_run(
    out: str | Path, overwrite: bool = False, lock: bool = True, what: str = "probgen fit"
) -> Iterator[Path]:
    """Hold ``out`` for one writer and give the directory to write the run into.

    Without ``overwrite`` that is ``out`` itself. With it, and a run already in ``out``, it is a
    fresh folder beside ``out`` that replaces it only when the block ends without an error;
    on an error the new folder is removed and the old run is left as it was. ``lock=False``
    (processes other than the writing one) checks nothing and writes nothing.
    """
    path = Path(out)
    if not lock:
        yield path
        return
    if path.name in ("", ".", ".."):  # a name is needed for the lock and the swap beside it
        path = path.resolve()
    made = _prepare_directory(path)
    try:
        run_lock = RunLock(path).acquire(what)
    except PermissionError as exc:
        _remove_unused(made)
        raise RunError(f"-o {path}: cannot write in {path.parent} ({exc.strerror})") from None
    try:
        with run_lock:
            yield from _held(path, overwrite)
    finally:
        if not path.exists():
            _remove_unused(made)


def _held(path: Path, overwrite: bool) -> Iterator[Path]:
    """The body of :func:`writing_run` once the lock is held."""
    _recover(path)
    if not (overwrite and path.is_dir() and any(path.iterdir())):
        yield path
        return
    staged = _sibling(path, f"new-{os.getpid()}")
    staged.mkdir()
    try:
        yield staged
    except ProbgenError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        message = str(exc)
        if str(staged) in message:  # the failed new run's location means nothing now
            head = message[: message.find(str(staged))].rsplit(";", 1)[0]
            message = head if head.strip() else message.replace(str(staged), str(path))
        raise type(exc)(
            f"{message}; --overwrite: the new run was discarded and the run in {path} "
            "is kept as it was"
        ) from None
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    try:
        _swap(staged, path)
    except OSError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise RunError(
            f"--overwrite: could not move the new run into {path} ({exc.strerror or exc}); "
            "the old run is kept"
        ) from None
