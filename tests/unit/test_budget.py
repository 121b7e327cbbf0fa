from users.budget import RequestBudget


def test_budget_grants_exactly_n_and_completes_once_all_finished():
    done = []
    b = RequestBudget(3, on_complete=lambda: done.append(True))
    assert [b.take() for _ in range(5)] == [True, True, True, False, False]
    b.finish()
    b.finish()
    assert done == []
    b.finish()
    assert done == [True]
    b.finish()  # never twice
    assert done == [True]


def test_unlimited_budget_never_completes():
    done = []
    b = RequestBudget(None, on_complete=lambda: done.append(True))
    for _ in range(1000):
        assert b.take()
        b.finish()
    assert done == [] and not b.exhausted
