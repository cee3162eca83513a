"""Re-embedding: the same samples, their embeddings computed again by another model.

After an Edge TPU falls back to its CPU twin, or to open a project made with
another extractor, the stored JPEG model inputs are embedded again (the
mirrored copies too). Everything is computed before anything is swapped in;
the head is dropped, since it was trained on the other model's embeddings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from kiosk.capture import reembed_image
from kiosk.persist.files import ProjectError
from kiosk.session import SessionContents, TeachingSession
from kiosk.store import ClassRecord, Sample, frozen_sample

__all__ = ["reembed_contents", "reembed_session"]


def reembed_contents(
    contents: SessionContents,
    extractor: Any,
    progress: Callable[[int, int], Any] | None = None,
) -> SessionContents:
    """``contents`` with every embedding recomputed by ``extractor`` and no head.

    Args:
        progress: called with (done, total) after each sample.

    Raises:
        ProjectError: a sample has no stored image, or a damaged one.
    """
    total = contents.num_samples
    done = 0
    classes = []
    mirror = contents.settings.flip_augment
    for record in contents.classes:
        samples: list[Sample] = []
        for sample in record.samples:
            if not sample.image:
                raise ProjectError(
                    "Some samples have no stored image, so they cannot be re-embedded"
                )
            try:
                embedding, flipped = reembed_image(extractor, sample.image, mirror)
            except ValueError as error:
                raise ProjectError(f"A stored sample image is damaged: {error}") from None
            samples.append(
                frozen_sample(
                    sample.id,
                    sample.class_id,
                    embedding,
                    sample.thumbnail,
                    sample.image,
                    sample.created,
                    flipped,
                )
            )
            done += 1
            if progress is not None:
                progress(done, total)
        classes.append(ClassRecord(record.id, record.name, tuple(samples)))
    return dataclasses.replace(contents, classes=tuple(classes), head=None)


def reembed_session(session: TeachingSession) -> int:
    """Recompute every stored embedding with the session's extractor; returns how many.

    Drops nothing but the head. On an error the session is as it was.
    """
    contents = reembed_contents(session.contents(), session.extractor)
    session.replace(contents)
    return contents.num_samples
