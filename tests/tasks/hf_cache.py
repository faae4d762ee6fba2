"""Writing models and tokenizers where the Hugging Face hub cache keeps them (no hub is reachable here)."""

from __future__ import annotations

from pathlib import Path


def save_in_hub_cache(home: Path, repo_id: str, revision: str, *objects: object) -> Path:
    """Save ``objects`` (models, tokenizers) as the Hugging Face hub cache holds ``repo_id`` at ``revision``.

    Loading ``repo_id`` by name with ``local_files_only`` (or ``HF_HUB_OFFLINE=1``) and ``HF_HOME=home``
    then finds them, exactly as it would find a downloaded model.
    """
    repo = home / "hub" / f"models--{repo_id.replace('/', '--')}"
    for obj in objects:
        obj.save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return repo
