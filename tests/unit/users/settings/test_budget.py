from users.settings.budget import RequestBudget


def test_budget_grants_exactly_n_and_completes_once_all_finished():
    done = []
    b = RequestBudget(3, on_complete=lambda: done.append(True))
    assert [b.take() for _ in range(5)] == [True, True, True, False, False]
    b.finish()
    b.finish()
    assert done == []
    b.finish()
    assert done == [True]
    # never twice
    b.finish()
    assert done == [True]


def test_unlimited_budget_never_completes():
    done = []
    b = RequestBudget(None, on_complete=lambda: done.append(True))
    for _ in range(1000):
        assert b.take()
        b.finish()
    assert done == [] and not b.exhausted


from users.settings.budget import GrantLedger  # noqa: E402


def test_ledger_grants_exactly_the_total_across_workers():
    ledger = GrantLedger(10)
    assert ledger.request("a", 4) == 4
    assert ledger.request("b", 4) == 4
    # 10 in all, whatever the number of workers
    assert ledger.request("c", 4) == 2
    assert ledger.request("a", 1) == 0 and ledger.waiting == {"c": 2, "a": 1}
    for w, n in (("a", 4), ("b", 4), ("c", 2)):
        ledger.finished_by(w, n)
    assert ledger.complete and ledger.finished == 10


def test_departed_worker_gives_back_what_it_did_not_finish():
    ledger = GrantLedger(9)
    assert [ledger.request(w, 3) for w in "abc"] == [3, 3, 3]
    ledger.finished_by("a", 3)
    # b dies with 2 unfinished
    ledger.finished_by("b", 1)
    assert ledger.request("a", 2) == 0
    ledger.depart("b")
    assert ledger.available == 2
    assert ledger.regrant() == {"a": 2}
    ledger.finished_by("a", 2)
    ledger.finished_by("c", 3)
    assert ledger.complete and ledger.finished == 9
    # a departed worker gets nothing
    assert ledger.request("b", 5) == 0


def test_late_joiner_shares_the_remaining_budget():
    ledger = GrantLedger(5)
    assert ledger.request("a", 3) == 3
    assert ledger.request("late", 3) == 2
    assert ledger.available == 0


from llmclient.measure import RequestRecord  # noqa: E402
from users.settings.budget import Units  # noqa: E402


def test_with_sessions_a_session_spends_one_from_its_first_turn_to_its_last():
    done = []
    budget = RequestBudget(2, on_complete=lambda: done.append(True))
    units = Units(budget, sessions=True)
    first, middle, last = (RequestRecord(turn=t, last_turn=t == 3) for t in (1, 2, 3))
    assert units.take(first) and units.take(middle) and units.take(last)
    units.finish(first)
    units.finish(middle)
    assert budget.finished == 0
    units.finish(last)
    assert budget.finished == 1
    # a second session, then none: two sessions whatever their turns
    assert units.take(RequestRecord(turn=1)) and not units.take(RequestRecord(turn=1))
    units.finish(RequestRecord(turn=1, last_turn=True))
    assert done == [True]
    # a request outside any session spends its own
    counted = Units(RequestBudget(1), sessions=False)
    assert counted.take(RequestRecord(turn=2)) and not counted.take(RequestRecord(turn=3))
