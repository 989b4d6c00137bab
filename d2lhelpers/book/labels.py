# ruff: noqa: RUF001  (Chinese text uses full-width punctuation on purpose)
"""The Chinese names the pages, figures and panels give to classes and to how a run ended."""

from __future__ import annotations

import re

CLASS_LABELS = {"hotdog": "热狗", "not-hotdog": "非热狗"}
# How a run ended (History.status, a record's "status" kind), in a word
STATUS_WORDS = {"ok": "正常", "diverged": "发散", "stopped": "已停止", "interrupted": "已中断"}
DIVERGED = re.compile(r"diverged at epoch (\d+), batch (\d+)(?: \(loss (\S+)\))?")


def class_label(name: str) -> str:
    """A class name in Chinese (热狗, 非热狗); other names as they are."""
    return CLASS_LABELS.get(name, name)


def status_kind(status: object) -> str:
    """``"ok"``, ``"diverged"``, ``"stopped"``, ``"interrupted"``, or the status as it is."""
    status = str(status)
    return "diverged" if status.startswith("diverged") else status


def status_word(status: object) -> str:
    """A run's status in one Chinese word (发散 for any divergence); other statuses as they
    are."""
    kind = status_kind(status)
    return STATUS_WORDS.get(kind, kind)


def status_label(status: str) -> str:
    """A run's status (:meth:`History.status_text`, a record's ``status``) in Chinese, in full:
    where a run diverged, and at what loss.

    A status of any other form is returned as it is.
    """
    diverged = DIVERGED.fullmatch(status)
    if diverged is None:
        return STATUS_WORDS.get(status, status)
    epoch, batch, loss = diverged.groups()
    return f"在第 {epoch} 个迭代周期第 {batch} 个批量发散" + (f"（损失 {loss}）" if loss else "")
