"""EmbeddingStore: classes, samples, undo, names, splits, thread safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kiosk.store import (
    MAX_CLASSES,
    MAX_NAME_LENGTH,
    ClassRecord,
    EmbeddingStore,
    StoreFullError,
    listen,
    normalize_class_name,
)

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


def test_removed_samples_and_classes_come_back_unchanged() -> None:
    store = filled_store([2, 3, 1])
    first = store.samples(1)[0]
    removed = store.remove_samples([first.id, 999])
    assert removed == (first,) and store.counts() == [2, 2, 1]
    store.insert_samples(removed)  # same object, same id, back in id order
    assert store.samples(1)[0] is first and store.counts() == [2, 3, 1]
    with pytest.raises(ValueError):
        store.insert_samples(removed)  # already there
    record = store.remove_class(1)
    assert store.class_names == ["Class 1", "Class 3"]
    assert store.restore_class(record, 1) == 1
    assert store.class_names == ["Class 1", "Class 2", "Class 3"]
    assert [s.id for s in store.samples(1)] == [s.id for s in record.samples]
    cleared = store.clear_class(0)
    assert len(cleared) == 2 and store.counts() == [0, 3, 1]
    with pytest.raises(KeyError):
        store.remove_sample(cleared[0].id)
    gone = store.remove_class(0)
    with pytest.raises(ValueError, match="class is gone"):
        store.insert_samples(cleared)
    store.restore_class(gone, 0)
    store.insert_samples(cleared)
    assert store.counts() == [2, 3, 1]


def test_limits_hold_for_every_way_in() -> None:
    store = EmbeddingStore(D, max_samples_per_class=2)
    store.add_class()
    store.add_sample(0, vec(), THUMB)
    store.add_sample(0, vec(), THUMB)
    with pytest.raises(StoreFullError, match="most a class"):
        store.add_sample(0, vec(), THUMB)
    removed = store.clear_class(0)
    store.add_sample(0, vec(), THUMB)
    with pytest.raises(StoreFullError):
        store.insert_samples(removed)  # two more would make three
    assert store.counts() == [1]
    before = store.snapshot()
    with pytest.raises(StoreFullError):
        store.replace([ClassRecord(store.class_ids[0], "A", removed + before.samples[0])])
    assert store.snapshot().samples == before.samples  # nothing changed


def test_replace_is_checked_first_then_swaps_everything_at_once() -> None:
    store = filled_store([2, 1])
    other = filled_store([1, 1, 3])
    seen: list[str] = []
    store.events.connect(lambda info: seen.append(info.signal.name))
    records = other.snapshot().records()
    bad = [ClassRecord(0, "A", records[0].samples), ClassRecord(1, "a", ())]
    with pytest.raises(ValueError, match="already a class"):
        store.replace(bad)
    assert store.counts() == [2, 1] and seen == []
    store.replace(records, (7, 40))
    assert store.counts() == [1, 1, 3] and seen == ["replaced"]
    assert store.next_ids == (7, 40)
    assert store.add_class() == 3 and store.class_ids[3] == 7


def test_extend_adds_classes_and_samples_in_one_step() -> None:
    store = filled_store([1])
    store.rename_class(0, "cat")
    template = store.samples(0)[0]
    seen: list[str] = []
    store.events.connect(lambda info: seen.append(info.signal.name))
    created, added = store.extend([("Cat", [template, template]), ("dog", [template])])
    assert store.class_names == ["cat", "dog"] and store.counts() == [3, 1]
    assert len(created) == 1 and len({s.id for s in added}) == 3
    assert seen == ["extended"]
    small = EmbeddingStore(D, max_samples_per_class=2)
    small.add_class("cat")
    with pytest.raises(StoreFullError):
        small.extend([("cat", [template] * 3), ("new", [template])])
    assert small.class_names == ["cat"] and small.counts() == [0]  # all or nothing


def test_many_classes_are_linear_and_capped() -> None:
    store = EmbeddingStore(D)
    store.extend([(f"c{i}", []) for i in range(MAX_CLASSES)])
    assert store.num_classes == MAX_CLASSES
    with pytest.raises(ValueError, match="at most"):
        store.add_class()


def test_thumbnails_newest_first() -> None:
    store = EmbeddingStore(D)
    store.add_class()
    for k in range(6):
        store.add_sample(0, vec(), np.full((2, 2, 3), k, np.uint8))
    values = [int(t[0, 0, 0]) for t in store.latest_thumbnails(0, n=4)]
    assert values == [5, 4, 3, 2]
    assert store.latest_thumbnails(0, n=0) == []


def test_events_say_what_changed_outside_the_lock() -> None:
    store = EmbeddingStore(D)
    seen: list[tuple] = []

    def listener(info: object) -> None:
        # Would deadlock (or fail here) if called with the store's lock held.
        assert store._lock.acquire(blocking=False)
        store._lock.release()
        seen.append((info.signal.name, store.version))

    def broken(*args: object) -> None:
        raise RuntimeError("a broken listener must not break the store")

    listen(store.events.samplesAdded, broken)
    store.events.connect(listener)
    store.add_class()
    sample_id = store.add_sample(0, vec(), THUMB)
    store.rename_class(0, "A")
    store.rename_class(0, "A")  # no change, no event
    store.clear_class(0)
    store.remove_class(0)
    assert [name for name, _ in seen] == [
        "classAdded",
        "samplesAdded",
        "classRenamed",
        "samplesRemoved",
        "classCleared",
        "classRemoved",
    ]
    assert store.version == 5
    added: list = []
    store.events.samplesAdded.connect(added.append)
    store.add_class()
    store.add_sample(0, vec(), THUMB)
    assert added[0][0].id == sample_id + 1 and added[0][0].class_id == store.class_ids[0]


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
    """Random add/remove/clear/put-back sequences against a plain-list model."""

    def __init__(self) -> None:
        super().__init__()
        self.store = EmbeddingStore(D)
        self.model: list[list[int]] = []  # per class: sample ids in capture order
        self.removed: list[tuple] = []  # samples taken out, to put back

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

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def clear_class(self, data: st.DataObject) -> None:
        c = data.draw(st.integers(0, len(self.model) - 1))
        removed = self.store.clear_class(c)
        if removed:
            self.removed.append(removed)
        self.model[c] = []

    @precondition(lambda self: self.removed)
    @rule()
    def put_back(self) -> None:
        samples = self.removed.pop()
        ids = self.store.class_ids
        if all(s.class_id in ids for s in samples):
            self.store.insert_samples(samples)
            for s in samples:
                self.model[ids.index(s.class_id)].append(s.id)
                self.model[ids.index(s.class_id)].sort()
        else:
            with pytest.raises(ValueError):
                self.store.insert_samples(samples)

    @invariant()
    def counts_match(self) -> None:
        assert self.store.counts() == [len(s) for s in self.model]
        assert self.store.total_samples == sum(len(s) for s in self.model)
        assert [[s.id for s in self.store.samples(c)] for c in range(len(self.model))] == self.model
        x, y = self.store.as_arrays()
        assert len(x) == len(y) == sum(len(s) for s in self.model)
        assert self.store.nbytes == sum(
            s.nbytes for c in range(len(self.model)) for s in self.store.samples(c)
        )


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
