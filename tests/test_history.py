"""Undo and redo match what people did: a burst is one step, a deleted class comes back."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kiosk.session import TeachingSession
from tests.fakes import FakeExtractor, picture


def state(session: TeachingSession) -> tuple:
    """What a person sees: class names in order, and each class's sample ids."""
    snapshot = session.store.snapshot()
    return snapshot.class_names, tuple(tuple(s.id for s in c) for c in snapshot.samples)


def test_a_burst_is_one_step_and_a_tap_another() -> None:
    session = TeachingSession(FakeExtractor())
    session.add_class("a")
    for k in range(12):  # one second held at 12 Hz
        session.capture(0, picture(k), group="press 1")
    session.capture(0, picture(99), group="press 2")
    assert session.store.counts() == [13]
    assert session.undo().describe() == "1 sample of “a”"
    assert session.undo().describe() == "12 samples of “a”"
    assert session.store.counts() == [0]
    session.redo()
    assert session.store.counts() == [12]


def test_delete_and_clear_come_back_with_their_samples_in_place() -> None:
    session = TeachingSession(FakeExtractor())
    for name in ("a", "b", "c"):
        index = session.add_class(name)
        for k in range(3):
            session.capture(index, picture(10 * index + k))
    before = state(session)
    session.remove_class(1)
    session.clear_class(0)
    assert session.store.class_names == ["a", "c"] and session.store.counts() == [0, 3]
    session.undo()
    session.undo()
    assert state(session) == before  # "b" back between "a" and "c", samples unchanged
    session.redo()
    assert session.store.class_names == ["a", "c"]


def test_recent_means_captures_since_the_last_train() -> None:
    session = TeachingSession(FakeExtractor())
    for name in ("a", "b"):
        index = session.add_class(name)
        session.capture(index, picture(index))
    assert session.history.is_recent(session.history.next_undo())
    session.train()
    assert not session.history.is_recent(session.history.next_undo())  # before the Train
    session.capture(0, picture(7))
    assert session.history.is_recent(session.history.next_undo())
    session.remove_class(1)
    assert not session.history.is_recent(session.history.next_undo())  # not a capture


def test_a_load_clears_the_history() -> None:
    session = TeachingSession(FakeExtractor())
    session.add_class("a")
    session.capture(0, picture(1))
    session.replace(TeachingSession(FakeExtractor()).contents())
    assert not session.history.can_undo and session.undo() is None


class HistoryMachine(RuleBasedStateMachine):
    """Random steps, undos and redos: every undo restores exactly the state before the step."""

    def __init__(self) -> None:
        super().__init__()
        self.session = TeachingSession(FakeExtractor())
        self.before: list[tuple] = []  # state before each step on the undo stack
        self.after: list[tuple] = []  # state before each undone step was undone
        self.frames = 0

    def _step(self, action) -> None:
        self.before.append(state(self.session))
        action()
        self.after.clear()

    @rule()
    def add_class(self) -> None:
        self._step(lambda: self.session.add_class())

    @precondition(lambda self: self.session.store.num_classes)
    @rule(data=st.data(), burst=st.integers(1, 4))
    def capture(self, data: st.DataObject, burst: int) -> None:
        index = data.draw(st.integers(0, self.session.store.num_classes - 1))
        self.frames += 1
        group = f"press {self.frames}"

        def press() -> None:
            for _ in range(burst):
                self.frames += 1
                self.session.capture(index, picture(self.frames, size=16), group)

        self._step(press)

    @precondition(lambda self: self.session.store.num_classes)
    @rule(data=st.data())
    def remove_class(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, self.session.store.num_classes - 1))
        self._step(lambda: self.session.remove_class(index))

    @precondition(lambda self: any(self.session.store.counts()))
    @rule(data=st.data())
    def clear_class(self, data: st.DataObject) -> None:
        full = [i for i, n in enumerate(self.session.store.counts()) if n]
        index = data.draw(st.sampled_from(full))
        self._step(lambda: self.session.clear_class(index))

    @precondition(lambda self: self.session.store.num_classes)
    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, self.session.store.num_classes - 1))
        self.frames += 1
        name = f"renamed {self.frames}"
        self._step(lambda: self.session.rename_class(index, name))

    @precondition(lambda self: self.before)
    @rule()
    def undo(self) -> None:
        now = state(self.session)
        assert self.session.undo() is not None
        assert state(self.session) == self.before.pop()
        self.after.append(now)

    @precondition(lambda self: self.after)
    @rule()
    def redo(self) -> None:
        now = state(self.session)
        assert self.session.redo() is not None
        assert state(self.session) == self.after.pop()
        self.before.append(now)

    @invariant()
    def stacks_match(self) -> None:
        assert self.session.history.can_undo == bool(self.before)
        assert self.session.history.can_redo == bool(self.after)


TestHistoryMachine = HistoryMachine.TestCase
TestHistoryMachine.settings = settings(max_examples=50, stateful_step_count=25, deadline=None)
