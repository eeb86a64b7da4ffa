"""Find a named file in a local directory or, lazily, on the Hugging Face Hub; push a saved folder there."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any, Optional

__all__ = ["resolve_file", "is_hub_name", "push_folder_to_hub"]

# "name" or "owner/name": what the Hub accepts as a repository id.
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def is_hub_name(name_or_path: str) -> bool:
    """True when `name_or_path` is no local path but could be a Hub repository id."""
    return (
        not os.path.exists(name_or_path)
        and _HUB_NAME.match(name_or_path) is not None
        and ".." not in name_or_path
    )


def resolve_file(
    name_or_path: str | os.PathLike,
    filename: str,
    *,
    required: bool = True,
    revision: Optional[str] = None,
    cache_dir: Optional[str | os.PathLike] = None,
    local_files_only: bool = False,
    token: Any = None,
    subfolder: Optional[str] = None,
) -> Optional[str]:
    """Local path of `filename` inside the directory or Hub repository `name_or_path`.

    A local directory is used as is. Anything else that looks like a Hub repository id
    ("owner/name") is fetched with `huggingface_hub` (imported only then). Returns None for a
    missing file when `required` is False; otherwise raises FileNotFoundError, or OSError when
    the Hub cannot be reached (offline, unknown repository) and the file is not in the cache.
    """
    name = os.fspath(name_or_path)
    inner = filename if not subfolder else os.path.join(subfolder, filename)
    if os.path.isdir(name):
        path = os.path.join(name, inner)
        if os.path.isfile(path):
            return path
        if required:
            raise FileNotFoundError(f"{inner!r} not found in directory {name!r}")
        return None
    if os.path.isfile(name):
        if os.path.basename(name) == filename:
            return name
        raise NotADirectoryError(
            f"{name!r} is a file; expected a directory (or Hub repository id) holding {filename!r}"
        )
    if not is_hub_name(name):
        raise FileNotFoundError(
            f"{name!r} is neither an existing directory nor a Hugging Face Hub repository id"
        )
    return _hub_download(
        name,
        filename,
        required=required,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        token=token,
        subfolder=subfolder,
    )


def _import_hub(what: str) -> Any:
    """`huggingface_hub`, or an ImportError saying what needs it and how to install it."""
    try:
        import huggingface_hub
    except ImportError as err:
        raise ImportError(
            f"{what} needs the `huggingface_hub` package: pip install huggingface_hub (or pip install 'xlm[hub]')"
        ) from err
    return huggingface_hub


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it at import, or as the environment says now."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or value.upper() in {"1", "ON", "YES", "TRUE"}


def push_folder_to_hub(
    save: Callable[[str], Any],
    repo_id: str,
    *,
    commit_message: Optional[str] = None,
    commit_description: Optional[str] = None,
    private: Optional[bool] = None,
    token: Any = None,
    revision: Optional[str] = None,
    create_pr: bool = False,
    what: str = "files",
) -> Any:
    """Upload what `save(directory)` writes (a `save_pretrained`) to the Hub model repository `repo_id`.

    As transformers' `push_to_hub`: the repository is created if it does not exist (`private` for a new
    one), and everything is one commit (a pull request with `create_pr`) on `revision`. `huggingface_hub`
    is imported only here. Offline (HF_HUB_OFFLINE=1) or with the Hub unreachable this is an OSError
    saying so, before anything is written. Returns huggingface_hub's `CommitInfo`.
    """
    if not isinstance(repo_id, str) or not repo_id or not _HUB_NAME.match(repo_id) or ".." in repo_id:
        raise ValueError(f"repo_id must be a Hub repository id ('name' or 'owner/name'), got {repo_id!r}")
    huggingface_hub = _import_hub(f"pushing {what} to the Hugging Face Hub")
    if _hub_offline():
        raise OSError(
            f"cannot push {what} to Hub repository {repo_id!r}: offline mode is on (HF_HUB_OFFLINE=1); unset "
            "HF_HUB_OFFLINE to upload, or save_pretrained(directory) to keep the files locally"
        )
    from huggingface_hub import errors as hub_errors

    api = huggingface_hub.HfApi(token=token)
    where = f"Hub repository {repo_id!r}"
    with _push_errors(what, where, hub_errors):
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
    with tempfile.TemporaryDirectory(prefix="xlm-push-") as directory:
        save(directory)
        with _push_errors(what, where, hub_errors):
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=directory,
                commit_message=commit_message or f"Upload {what}",
                commit_description=commit_description,
                repo_type="model",
                revision=revision,
                create_pr=create_pr,
            )


@contextlib.contextmanager
def _push_errors(what: str, where: str, hub_errors: Any) -> Any:
    """The Hub's failures (offline, HTTP errors, no connection) as an OSError naming the push."""
    try:
        yield
    except hub_errors.OfflineModeIsEnabled as err:
        raise OSError(f"cannot push {what} to {where}: offline mode is on (HF_HUB_OFFLINE=1)") from err
    except hub_errors.HfHubHTTPError as err:
        raise OSError(f"cannot push {what} to {where}: {err}") from err
    except OSError as err:  # requests' and httpx's connection errors
        raise OSError(f"cannot push {what} to {where}: the Hub is not reachable ({err})") from err


def _hub_download(
    repo_id: str,
    filename: str,
    *,
    required: bool,
    revision: Optional[str],
    cache_dir: Optional[str | os.PathLike],
    local_files_only: bool,
    token: Any,
    subfolder: Optional[str],
) -> Optional[str]:
    try:
        import huggingface_hub
        from huggingface_hub import errors as hub_errors
    except ImportError as err:
        raise ImportError(
            f"{repo_id!r} is not a local directory, and loading it from the Hugging Face Hub needs "
            "the `huggingface_hub` package: pip install huggingface_hub (or pip install 'xlm[hub]')"
        ) from err

    where = f"{filename!r} of Hub repository {repo_id!r}" + (f" (revision {revision})" if revision else "")
    try:
        return huggingface_hub.hf_hub_download(
            repo_id,
            filename,
            subfolder=subfolder,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
        )
    except hub_errors.LocalEntryNotFoundError as err:
        raise OSError(
            f"cannot fetch {where}: the Hub is not reachable (offline, HF_HUB_OFFLINE=1 or "
            "local_files_only=True) and the file is not in the local cache"
        ) from err
    except hub_errors.EntryNotFoundError as err:
        if required:
            raise FileNotFoundError(f"{where} does not exist") from err
        return None
    except hub_errors.RepositoryNotFoundError as err:
        raise OSError(
            f"Hub repository {repo_id!r} not found (or private: pass token=...)"
        ) from err
    except hub_errors.RevisionNotFoundError as err:
        raise OSError(f"revision {revision!r} not found in Hub repository {repo_id!r}") from err
    except (hub_errors.HfHubHTTPError, OSError) as err:
        raise OSError(f"cannot fetch {where}: {err}") from err
