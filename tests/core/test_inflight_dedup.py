"""Pay once across kernels, seen from one dispatcher: a prompt whose cache lease another kernel holds is
waited for and served from that kernel's answer (cached, $0, the dollars it saved, one ledger hit per row);
sent here, exactly once, when the other kernel gives up or its lease runs out. The other kernel is this test
holding a lease in the real cache file under its own owner name; the server counts what reaches it.
And the order of the lookups: an exact repeat is the exact cache's hit even with the semantic cache on.
Written from mutants of Dispatcher._serve_hits and serve_cached (issue 17)."""

import threading
import time

import polars as pl

import hybridnb
from hybridnb.core.calls import build_request
from hybridnb.core.dispatcher import get_dispatcher
from hybridnb.core.screen import screen
from hybridnb.store import ledger
from hybridnb.store.cache import Cache, cache_key
from hybridnb.types import Usage

OTHER = "k-other-kernel-4242"  # the other kernel's lease owner (same process: its pid is alive)
PAID = "the answer the other kernel paid for"
PAID_USD = 0.0125


def _until(run, cond, what, deadline_s=60.0):
    end = time.monotonic() + deadline_s
    while not cond():
        if not run.is_alive():  # the run ended (or failed) before it got there
            run.finish()
            raise AssertionError(f"the run ended before: {what}")
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s:.0f} s: {what}")
        time.sleep(0.02)


class _Run(threading.Thread):
    """Dispatcher.run on the reason route in a thread; every delivered (index, response) is kept."""

    def __init__(self, prompts):
        super().__init__(daemon=True)
        self.d = get_dispatcher()
        t = self.d.resolve("reason")
        self.requests = [build_request(p, t.model) for p in prompts]
        screened, _ = screen(self.requests, t)
        self.keys = [cache_key(t.route, t.backend_name, t.endpoint, r) for r in screened]
        self.delivered, self.published, self.out, self.error = [], [], None, None
        self.d.subscribe(self.published.append)

    def run(self):
        try:
            self.out = self.d.run(self.requests, "reason", on_result=lambda i, r: self.delivered.append((i, r)))
        except BaseException as e:  # noqa: BLE001 - re-raised in finish()
            self.error = e

    def finish(self):
        self.join(120)
        assert not self.is_alive(), "the run did not finish"
        if self.error is not None:
            raise self.error
        return self.out


def _sent(server) -> list[str]:
    return [m["content"] for e in server.log for m in e["body"]["messages"] if m["role"] == "user"]


def _calls(home):
    return ledger.read(home).filter(pl.col("kind") == "call")


def _lease_others(home, *keys):
    other = Cache(home)
    mine, held = other.acquire(list(keys), OTHER, 600.0)
    assert mine == set(keys) and held == set()
    return other


def test_a_prompt_another_kernel_is_paying_for_is_waited_for_and_served_from_its_answer(faulty, hybridnb_home):
    free = ["a question nobody else asks", "another question of our own"]
    leased = "a question the other kernel is already paying for"
    run = _Run([free[0], leased, free[1], leased, leased])  # the leased prompt on three rows
    kl = run.keys[1]
    other = _lease_others(hybridnb_home, kl)
    run.start()
    # the free prompts are sent at once; the leased one is not sent while the other kernel holds it
    _until(run, lambda: {i for i, _ in run.delivered} == {0, 2}, "the free rows answered")
    assert faulty.received == 2 and sorted(_sent(faulty)) == sorted(free) and run.is_alive()
    other.put(kl, PAID, Usage(11, 7, 0), PAID_USD, "gpt-4o-mini")
    other.release([kl], OTHER)
    out = run.finish()

    assert faulty.received == 2 and leased not in _sent(faulty)  # never sent here
    for i in (1, 3, 4):
        r = out[i]
        assert (r.text, r.cached, r.cost_usd, r.saved_usd, r.ok) == (PAID, True, 0.0, PAID_USD, True)
        assert (r.usage.input_tokens, r.usage.output_tokens) == (11, 7)
    for i in (0, 2):
        assert out[i].ok and not out[i].cached and out[i].cost_usd > 0 and out[i].text.startswith("answer: ")
    assert sorted(i for i, _ in run.delivered) == [0, 1, 2, 3, 4]
    assert all(r is out[i] for i, r in run.delivered)

    df = _calls(hybridnb_home)
    hits = df.filter(pl.col("status") == "cached")
    assert hits.height == 3 and df.filter(pl.col("status") == "ok").height == 2 and df.height == 5
    assert hits["cost_usd"].to_list() == [0.0] * 3 and hits["saved_usd"].to_list() == [PAID_USD] * 3
    assert hits["cached"].to_list() == [True] * 3 and hits["route"].to_list() == ["reason"] * 3
    assert hits["session"].to_list() == [run.d.writer(hybridnb_home).session] * 3 and hits["model"].to_list() == ["gpt-4o-mini"] * 3
    assert hits["id"].n_unique() == 3
    assert sorted(r.id for r in run.published if r.status == "cached") == sorted(hits["id"].to_list())
    assert other.get(kl).text == PAID  # the other kernel's answer is left as it was


def test_the_other_kernel_giving_up_without_an_answer_means_sending_it_here_exactly_once(faulty, hybridnb_home):
    free, leased = "our own question", "a question the other kernel gives up on"
    run = _Run([free, leased, leased])
    kl = run.keys[1]
    other = _lease_others(hybridnb_home, kl)
    run.start()
    _until(run, lambda: faulty.received == 1 and other.get(run.keys[0]) is not None, "the free row answered")
    assert _sent(faulty) == [free] and run.is_alive()
    other.release([kl], OTHER)  # no answer in the cache
    out = run.finish()

    assert faulty.received == 2 and sorted(_sent(faulty)) == sorted([free, leased])
    first, dup = out[1], out[2]
    assert first.ok and not first.cached and first.cost_usd > 0 and first.text == dup.text
    assert dup.cached and dup.cost_usd == 0.0 and dup.saved_usd == first.cost_usd
    df = _calls(hybridnb_home)
    assert df.filter(pl.col("status") == "ok").height == 2 and df.filter(pl.col("status") == "cached").height == 1
    assert other.get(kl).text == first.text  # now cached for everyone
    third = Cache(hybridnb_home).acquire([kl], "k-third", 60.0)
    assert third == ({kl}, set())  # this dispatcher released its lease too


def test_a_lease_that_runs_out_is_taken_over_and_sent_here_once(faulty, hybridnb_home):
    free, leased = "our question meanwhile", "a question whose other kernel went quiet"
    run = _Run([free, leased])
    kl = run.keys[1]
    other = _lease_others(hybridnb_home, kl)
    run.start()
    _until(run, lambda: faulty.received == 1 and other.get(run.keys[0]) is not None, "the free row answered")
    assert _sent(faulty) == [free] and run.is_alive()
    other.acquire([kl], OTHER, 0.0)  # the other kernel's lease now ends at once, never released, no answer
    out = run.finish()
    assert faulty.received == 2 and _sent(faulty).count(leased) == 1
    assert out[1].ok and not out[1].cached and out[1].cost_usd > 0
    assert other.get(kl).text == out[1].text


def test_several_leased_prompts_are_served_as_each_answer_lands(faulty, hybridnb_home):
    qs = ["first leased question", "second leased question", "third leased question"]
    run = _Run(qs + qs[:1])
    other = _lease_others(hybridnb_home, *run.keys[:3])
    run.start()
    answers = {k: (f"other kernel's answer {n}", 0.001 * (n + 1)) for n, k in enumerate(run.keys[:3])}
    for n, k in enumerate(run.keys[:3]):  # answers land one at a time; each row is served from its own
        other.put(k, answers[k][0], Usage(3, 4, 0), answers[k][1], "gpt-4o-mini")
        other.release([k], OTHER)
        expected = set(range(n + 1)) | {3}  # row 3 repeats row 0; the rows still leased wait
        _until(run, lambda: {i for i, _ in run.delivered} == expected, f"rows {sorted(expected)} served")
    out = run.finish()
    assert faulty.received == 0
    assert [(r.text, r.saved_usd, r.cached) for r in out] == [
        (answers[k][0], answers[k][1], True) for k in run.keys]
    hits = _calls(hybridnb_home).filter(pl.col("status") == "cached")
    assert sorted(hits["saved_usd"].to_list()) == sorted([0.001, 0.001, 0.002, 0.003])


def test_an_exact_repeat_is_an_exact_hit_with_the_semantic_cache_on(faulty, hybridnb_home):
    prompt = "Summarise this complaint: my parcel arrived two weeks late and the box was crushed"
    first = hybridnb.reason(prompt, cache="semantic")
    again = hybridnb.reason(prompt, cache="semantic")
    assert again.cached and again.text == first.text and again.saved_usd == first.cost_usd
    assert faulty.received == 1
    hits = _calls(hybridnb_home).filter(pl.col("status") == "cached")
    assert hits.height == 1 and hits["similarity"].to_list() == [None]  # the exact cache's hit, not a near one
