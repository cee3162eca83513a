"""EmbeddingStore: classes, samples, undo, names, splits, thread safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kiosk.store import MAX_NAME_LENGTH, EmbeddingStore, normalize_class_name

D = 8
THUMB = np.zeros((4, 4, 3), np.uint8)


def vec(value: float = 0.0) -> np.ndarray:
    return np.full(D, value, np.float32)


def filled_store(sizes: list[int]) -> EmbeddingStore:
    store = EmbeddingStore(D)
    for c, n in enumerate(sizes):
        store.add_class()
        for k in range(n):
            store.add_sample(c, vec(100 * c + k), THUMB)
    return store


def test_default_names_and_many_classes() -> None:
    store = EmbeddingStore(D)
    for _ in range(12):
        store.add_class()
    assert store.class_names == [f"Class {i}" for i in range(1, 13)]
    store.remove_class(0)
    # The next default name skips names still in use.
    index = store.add_class()
    assert store.class_names[index] == "Class 13"
    assert store.counts() == [0] * 12


def test_rename_rules() -> None:
    store = EmbeddingStore(D)
    store.add_class("Cat")
    store.add_class("Dog")
    store.rename_class(0, "  cat  ")  # own name, other case: fine, stripped
    assert store.class_names == ["cat", "Dog"]
    store.rename_class(1, "Café ☕ on/off")  # unicode and slashes are fine
    assert store.class_names[1] == "Café ☕ on/off"
    for bad, why in [
        ("", "empty"),
        ("   ", "empty"),
        ("CAT", "already"),
        ("a\nb", "line breaks"),
        ("a\tb", "control"),
        ("a\u2028b", "line breaks"),
        ("x" * (MAX_NAME_LENGTH + 1), "at most"),
    ]:
        with pytest.raises(ValueError, match=why):
            store.rename_class(1, bad)
    assert store.class_names == ["cat", "Café ☕ on/off"]
    with pytest.raises(ValueError, match="already"):
        store.add_class("Cat")
    with pytest.raises(IndexError):
        store.rename_class(5, "x")
    assert normalize_class_name("x" * MAX_NAME_LENGTH) == "x" * MAX_NAME_LENGTH


def test_add_sample_validation() -> None:
    store = EmbeddingStore(D)
    store.add_class()
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        store.add_sample(0, np.zeros(D + 1, np.float32), THUMB)
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        store.add_sample(0, np.zeros((1, D), np.float32), THUMB)
    with pytest.raises(ValueError, match="NaN"):
        store.add_sample(0, np.full(D, np.nan, np.float32), THUMB)
    with pytest.raises(ValueError, match="NaN or infinite"):
        store.add_sample(0, np.full(D, np.inf, np.float32), THUMB)
    with pytest.raises(ValueError, match="thumbnail"):
        store.add_sample(0, vec(), np.zeros((4, 4), np.uint8))
    with pytest.raises(IndexError):
        store.add_sample(1, vec(), THUMB)
    assert store.counts() == [0]
    with pytest.raises(ValueError):
        EmbeddingStore(0)


def test_samples_are_immutable_copies() -> None:
    store = EmbeddingStore(D)
    store.add_class()
    embedding = vec(1.0)
    thumbnail = np.ones((4, 4, 3), np.uint8)
    store.add_sample(0, embedding, thumbnail, image=bytearray(b"jpeg"))
    embedding[:] = 5.0
    thumbnail[:] = 9
    (sample,) = store.samples(0)
    assert np.all(sample.embedding == 1.0) and np.all(sample.thumbnail == 1)
    assert sample.image == b"jpeg"
    with pytest.raises(ValueError):
        sample.embedding[0] = 3.0
    assert store.embeddings(0).dtype == np.float32


def test_undo_is_global_and_survives_class_changes() -> None:
    store = EmbeddingStore(D)
    for _ in range(3):
        store.add_class()
    a = store.add_sample(0, vec(), THUMB)
    store.add_sample(1, vec(), THUMB)
    store.add_sample(2, vec(), THUMB)
    store.add_sample(1, vec(), THUMB)
    assert store.undo_last() == 1
    store.remove_class(1)  # class 2 becomes class 1
    assert store.undo_last() == 1  # the sample of old class 2, at its new index
    assert store.counts() == [1, 0]
    store.remove_sample(a)
    assert store.undo_last() is None
    with pytest.raises(KeyError):
        store.remove_sample(a)


def test_thumbnails_newest_first() -> None:
    store = EmbeddingStore(D)
    store.add_class()
    for k in range(6):
        store.add_sample(0, vec(), np.full((2, 2, 3), k, np.uint8))
    values = [int(t[0, 0, 0]) for t in store.latest_thumbnails(0, n=4)]
    assert values == [5, 4, 3, 2]
    assert store.latest_thumbnails(0, n=0) == []


def test_version_and_listeners_run_outside_the_lock() -> None:
    store = EmbeddingStore(D)
    seen: list[int] = []

    def listener() -> None:
        # Would deadlock (or fail here) if called with the store's lock held.
        assert store._lock.acquire(blocking=False)
        store._lock.release()
        seen.append(store.version)

    def broken() -> None:
        raise RuntimeError("a broken listener must not break the store")

    store.listeners.extend([broken, listener])
    store.add_class()
    store.add_sample(0, vec(), THUMB)
    store.rename_class(0, "A")
    store.rename_class(0, "A")  # no change, no event
    store.clear_class(0)
    store.undo_last()  # nothing left to undo: no event
    store.remove_class(0)
    assert seen == [1, 2, 3, 4, 5]
    assert store.version == 5


def test_training_data_is_stratified() -> None:
    store = filled_store([2, 5, 10, 20, 0])
    data = store.training_data(val_fraction=0.2, seed=1)
    val_counts = np.bincount(data["labels_val"], minlength=5)
    train_counts = np.bincount(data["labels_train"], minlength=5)
    assert val_counts.tolist() == [0, 1, 2, 4, 0]  # 2 is too few to hold any out
    assert (train_counts + val_counts).tolist() == [2, 5, 10, 20, 0]
    assert data["data_train"].dtype == np.float32 and data["data_train"].shape[1] == D
    # Rows carry their own class: embeddings were filled with 100 * class + k.
    for x, y in [
        (data["data_train"], data["labels_train"]),
        (data["data_val"], data["labels_val"]),
    ]:
        assert np.array_equal(x[:, 0] // 100, y)
    # No row both in train and val, and the split is reproducible.
    assert not set(data["data_train"][:, 0]) & set(data["data_val"][:, 0])
    again = store.training_data(val_fraction=0.2, seed=1)
    assert np.array_equal(again["data_val"], data["data_val"])


def test_training_data_subset_relabels_and_may_have_no_val() -> None:
    snapshot = filled_store([3, 0, 4]).snapshot()
    data = snapshot.training_data(val_fraction=0.15, classes=[0, 2])
    assert data["labels_train"].tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert data["data_val"].shape == (0, D) and data["labels_val"].shape == (0,)
    x, y = snapshot.as_arrays()
    assert x.shape == (7, D) and y.tolist() == [0, 0, 0, 2, 2, 2, 2]
    empty = EmbeddingStore(D).training_data()
    assert empty["data_train"].shape == (0, D)
    with pytest.raises(ValueError):
        snapshot.training_data(val_fraction=1.0)


def test_snapshot_does_not_change_afterwards() -> None:
    store = filled_store([3, 2])
    snapshot = store.snapshot()
    store.add_sample(0, vec(), THUMB)
    store.remove_class(1)
    assert snapshot.counts() == [3, 2]
    assert snapshot.class_names == ("Class 1", "Class 2")
    assert store.counts() == [4]


def test_concurrent_captures_are_all_kept() -> None:
    store = EmbeddingStore(D)
    store.add_class()
    store.add_class()

    def worker(c: int) -> None:
        for _ in range(200):
            store.add_sample(c % 2, vec(), THUMB)
            store.snapshot()

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert store.counts() == [400, 400]
    assert store.version == 2 + 800


class StoreMachine(RuleBasedStateMachine):
    """Random add/remove/undo/clear sequences against a plain-list model."""

    def __init__(self) -> None:
        super().__init__()
        self.store = EmbeddingStore(D)
        self.model: list[list[int]] = []  # per class: sample ids in capture order
        self.history: list[int] = []

    @rule()
    def add_class(self) -> None:
        assert self.store.add_class() == len(self.model)
        self.model.append([])

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove_class(self, data: st.DataObject) -> None:
        c = data.draw(st.integers(0, len(self.model) - 1))
        self.store.remove_class(c)
        self.model.pop(c)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def add_sample(self, data: st.DataObject) -> None:
        c = data.draw(st.integers(0, len(self.model) - 1))
        sample_id = self.store.add_sample(c, vec(c), THUMB)
        self.model[c].append(sample_id)
        self.history.append(sample_id)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def clear_class(self, data: st.DataObject) -> None:
        c = data.draw(st.integers(0, len(self.model) - 1))
        self.store.clear_class(c)
        self.model[c] = []

    @rule()
    def undo(self) -> None:
        present = {s for samples in self.model for s in samples}
        while self.history and self.history[-1] not in present:
            self.history.pop()
        expected = None
        if self.history:
            last = self.history.pop()
            expected = next(i for i, samples in enumerate(self.model) if last in samples)
            self.model[expected].remove(last)
        assert self.store.undo_last() == expected

    @invariant()
    def counts_match(self) -> None:
        assert self.store.counts() == [len(s) for s in self.model]
        assert self.store.total_samples == sum(len(s) for s in self.model)
        assert [[s.id for s in self.store.samples(c)] for c in range(len(self.model))] == self.model
        x, y = self.store.as_arrays()
        assert len(x) == len(y) == sum(len(s) for s in self.model)
        data = self.store.training_data()
        assert len(data["labels_train"]) + len(data["labels_val"]) == len(y)


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
