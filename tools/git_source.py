"""A git repository as a documentation source: a shallow clone of one branch or tag, and what to index of it
(the README, the docs folder, the docstrings of Python modules).

git runs as a subprocess without a shell, with an empty HOME and no system config (no credential helpers, no
hooks templates, no user settings), only the one transport the URL needs (``protocol.allow``), no redirects,
no submodules, no LFS downloads, and symbolic links checked out as plain files. Network URLs are checked by
the URL guard before git sees them (``evorag.tools.url_guard``); the clone itself resolves the host again, so
a DNS answer that changes in between is not re-checked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from evorag.tools.file_formats import is_supported

from evorag.errors import ExternalError, UserError

CLONE_TIMEOUT_S = 300
# A branch or tag name as git-check-ref-format allows it, narrowed: no option-like or path-escaping names.
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}$")
_DOCS_FOLDERS = ("docs/", "doc/")
_TEST_PARTS = frozenset({"test", "tests", "testing"})


def validate_ref(ref: str) -> str:
    if not _REF.match(ref) or ".." in ref or ref.endswith((".lock", "/", ".")) or "//" in ref:
        raise UserError(f"invalid git ref {ref!r}", hint="pass a branch or tag name, e.g. main or v1.2.0")
    return ref


def clone(url: str, dest: Path, *, ref: str | None = None, timeout: float = CLONE_TIMEOUT_S) -> str:
    """Clone ``url`` (an http(s) URL already checked by the URL guard, or a ``file://`` URL) at ``ref`` (default:
    the remote's default branch) into the new directory ``dest``, one commit deep. Returns the branch or tag
    name checked out. Raises ExternalError with git's own message when the clone fails."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("https", "http", "file"):
        raise UserError(f"git sources are cloned over https or from a local path, not {scheme or url!r}")
    home = dest.parent / (dest.name + ".home")
    home.mkdir(mode=0o700)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1",
           "GIT_ASKPASS": "/bin/false", "SSH_ASKPASS": "/bin/false", "LC_ALL": "C"}
    command = ["git", "-c", "protocol.allow=never", "-c", f"protocol.{scheme}.allow=always",
               "-c", "http.followRedirects=false", "-c", "core.symlinks=false", "-c", "core.hooksPath=/dev/null",
               "clone", "--quiet", "--depth", "1", "--single-branch", "--no-tags", "--template=",
               *(["--branch", ref] if ref else []), "--", url, str(dest)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ExternalError(f"git clone of {url} took longer than {timeout:.0f}s") from None
    except FileNotFoundError:
        raise ExternalError("git is not installed", hint="install git to index git repositories") from None
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0:
        message = " ".join(done.stderr.split())[-300:] or f"exit status {done.returncode}"
        raise ExternalError(f"git clone of {url} failed: {message}",
                            hint="check the URL and that --ref names a branch or tag of it")
    if ref:
        return ref
    head = subprocess.run(["git", "-C", str(dest), "rev-parse", "--abbrev-ref", "HEAD"], env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    return head.stdout.strip() or "HEAD"


def wanted(relative: str) -> bool:
    """What of a repository is documentation: README* at the top, the docs folder, Python modules (outside
    test folders) for their docstrings."""
    path = PurePosixPath(relative)
    if len(path.parts) == 1 and path.name.upper().startswith("README"):
        return is_supported(path.name) or path.suffix == ""
    if relative.startswith(_DOCS_FOLDERS):
        return is_supported(relative)
    return (path.suffix == ".py" and not _TEST_PARTS.intersection(path.parts[:-1])
            and not path.name.startswith("test_") and path.name not in ("setup.py", "conftest.py"))


def citation(repo: str, ref: str, relative: str) -> str:
    """Where a reader finds a file of the repository: its page on GitHub or GitLab, else ``git+URL@REF#PATH``
    (pip's notation for a file of a repository at a ref)."""
    parts = urlsplit(repo)
    base = repo.removesuffix("/").removesuffix(".git")
    if parts.scheme == "https" and parts.hostname == "github.com":
        return f"{base}/blob/{ref}/{relative}"
    if parts.scheme == "https" and parts.hostname == "gitlab.com":
        return f"{base}/-/blob/{ref}/{relative}"
    return f"git+{repo}@{ref}#{relative}"
