"""kazoo's recipes with several clients at once (one thread and one KazooClient each):
Lock, Semaphore, Election, Queue, LockingQueue, Barrier, DoubleBarrier."""

from __future__ import annotations

import threading
import time

import support

WORKERS = 4


def run_threads(targets, timeout: float = 60.0):
    """Runs the callables in threads; re-raises the first failure; bounded in time."""
    errors: list[BaseException] = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "workers did not finish in time"
    if errors:
        raise errors[0]


class Occupancy:
    """Counts how many workers are inside a critical section at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inside = 0
        self.max_inside = 0
        self.entries = 0

    def __enter__(self):
        with self.lock:
            self.inside += 1
            self.entries += 1
            self.max_inside = max(self.max_inside, self.inside)

    def __exit__(self, *exc):
        with self.lock:
            self.inside -= 1


def test_lock_gives_mutual_exclusion(clients, base):
    counter = clients().create(f"{base}/counter", b"0")
    occupancy = Occupancy()
    rounds = 5

    def worker(i):
        def run():
            c = clients()
            lock = c.Lock(f"{base}/lock", identifier=f"worker-{i}")
            for _ in range(rounds):
                with lock:
                    with occupancy:
                        # Read-modify-write without a version: only the lock keeps it right.
                        value = int(c.get(counter)[0])
                        time.sleep(0.005)
                        c.set(counter, str(value + 1).encode())
        return run

    run_threads([worker(i) for i in range(WORKERS)])
    check = clients()
    check.sync(counter)
    assert int(check.get(counter)[0]) == WORKERS * rounds
    assert occupancy.max_inside == 1 and occupancy.entries == WORKERS * rounds
    # The lock's nodes are gone with their holders.
    assert check.get_children(f"{base}/lock") == []


def test_semaphore_bounds_concurrent_holders(clients, base):
    occupancy = Occupancy()
    barrier = threading.Barrier(5)

    def worker(i):
        def run():
            c = clients()
            sem = c.Semaphore(f"{base}/sem", identifier=f"w{i}", max_leases=2)
            barrier.wait(10)
            for _ in range(2):
                with sem:
                    with occupancy:
                        time.sleep(0.1)
        return run

    run_threads([worker(i) for i in range(5)])
    assert occupancy.max_inside == 2, "at most two leases, and two were used at once"
    assert occupancy.entries == 10


def test_election_has_one_leader_at_a_time_and_everyone_leads_once(clients, base):
    occupancy = Occupancy()
    leaders: list[str] = []

    def worker(i):
        def run():
            c = clients()
            election = c.Election(f"{base}/election", identifier=f"candidate-{i}")
            contenders = election.contenders()
            assert isinstance(contenders, list)

            def lead():
                with occupancy:
                    leaders.append(f"candidate-{i}")
                    time.sleep(0.1)

            election.run(lead)
        return run

    run_threads([worker(i) for i in range(3)])
    assert sorted(leaders) == ["candidate-0", "candidate-1", "candidate-2"]
    assert occupancy.max_inside == 1


def test_queue_delivers_each_item_once_in_order(clients, base):
    producer = clients()
    queue = producer.Queue(f"{base}/queue")
    items = [f"item-{i:02d}".encode() for i in range(30)]
    for item in items:
        queue.put(item)
    assert len(queue) == 30
    consumed: list[bytes] = []
    lock = threading.Lock()

    def consumer():
        c = clients()
        q = c.Queue(f"{base}/queue")
        c.sync(f"{base}/queue")
        mine = []
        while True:
            item = q.get()
            if item is None:
                break
            mine.append(item)
        # One consumer's items come in queue order.
        assert mine == sorted(mine)
        with lock:
            consumed.extend(mine)

    run_threads([consumer for _ in range(3)])
    assert sorted(consumed) == items, "every item exactly once"
    assert len(queue) == 0
    # Priorities: a lower number comes out first.
    queue.put(b"low", priority=200)
    queue.put(b"high", priority=1)
    assert [queue.get(), queue.get()] == [b"high", b"low"]


def test_locking_queue_is_exactly_once_even_when_a_consumer_dies(clients, base):
    producer = clients()
    queue = producer.LockingQueue(f"{base}/lq")
    queue.put_all([f"job-{i}".encode() for i in range(12)])
    assert len(queue) == 12

    # A consumer that takes an item and dies without consuming it gives it back.
    dying = clients()
    taken = dying.LockingQueue(f"{base}/lq").get(timeout=10)
    assert taken == b"job-0"
    dying.stop()
    dying.close()

    done: list[bytes] = []
    lock = threading.Lock()

    def consumer():
        c = clients()
        q = c.LockingQueue(f"{base}/lq")
        while True:
            item = q.get(timeout=2)
            if item is None:
                return
            assert q.holds_lock()
            with lock:
                done.append(item)
            assert q.consume()

    run_threads([consumer for _ in range(3)])
    assert sorted(done) == sorted(f"job-{i}".encode() for i in range(12)), "each job exactly once"
    assert len(queue) == 0


def test_barrier_holds_everyone_until_removed(clients, base):
    owner = clients()
    barrier = owner.Barrier(f"{base}/barrier")
    barrier.create()
    passed = []
    started = threading.Barrier(4)

    def waiter(i):
        def run():
            c = clients()
            b = c.Barrier(f"{base}/barrier")
            c.sync(f"{base}/barrier")
            started.wait(10)
            assert b.wait(timeout=15) is True
            passed.append((i, time.monotonic()))
        return run

    threads = [threading.Thread(target=waiter(i), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    started.wait(10)
    time.sleep(0.5)
    assert passed == [], "nobody passes a raised barrier"
    assert barrier.wait(timeout=0.2) is False
    removed_at = time.monotonic()
    barrier.remove()
    for t in threads:
        t.join(20)
    assert sorted(i for i, _ in passed) == [0, 1, 2]
    assert all(t >= removed_at for _, t in passed)


def test_double_barrier_enters_and_leaves_together(clients, base):
    n = 3
    log: list[tuple[str, int, float]] = []
    lock = threading.Lock()

    def member(i):
        def run():
            c = clients()
            db = c.DoubleBarrier(f"{base}/db", n, identifier=f"m{i}")
            time.sleep(0.2 * i)  # arrive one after another
            with lock:
                log.append(("arrive", i, time.monotonic()))
            db.enter()
            with lock:
                log.append(("entered", i, time.monotonic()))
            time.sleep(0.2 * (n - i))  # finish work one after another
            with lock:
                log.append(("done", i, time.monotonic()))
            db.leave()
            with lock:
                log.append(("left", i, time.monotonic()))
        return run

    run_threads([member(i) for i in range(n)])
    at = {(kind, i): t for kind, i, t in log}
    last_arrival = max(at[("arrive", i)] for i in range(n))
    last_done = max(at[("done", i)] for i in range(n))
    for i in range(n):
        assert at[("entered", i)] >= last_arrival, "nobody enters before everyone has arrived"
        assert at[("left", i)] >= last_done, "nobody leaves before everyone is done"
    probe = clients()
    probe.sync(f"{base}/db")
    assert probe.get_children(f"{base}/db") == []
