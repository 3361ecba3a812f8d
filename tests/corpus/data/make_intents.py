"""Write intents.csv and intents.jsonl: a small hand-written helpdesk corpus with an answer key.

An internet provider's support messages (a domain the corpus generator knows nothing about),
skewed intent shares, a secondary intent on about a fifth of the messages (billing most often,
as cost is in the conference corpus), some off-topic chatter (empty intent) and three blank
messages. Deterministic: ``python tests/corpus/data/make_intents.py`` rewrites the same files.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from pathlib import Path

N = 640
SEED = 20261130
OFF_TOPIC_SHARE = 0.05
SECONDARY_RATE = 0.22
BILLING_AS_SECONDARY = 0.5

# intent: (share, openers, details); details are joined after an opener
INTENTS: dict[str, tuple[float, list[str], list[str]]] = {
    "connection_drops": (0.30, [
        "my broadband keeps dropping out", "the connection cuts off every evening",
        "internet disconnects several times a day", "wifi light goes red and the line drops",
        "lost connection again this morning", "the link falls over whenever it rains"], [
        "the router reboots itself", "the dsl light flashes orange", "it reconnects after ten minutes",
        "video calls freeze then hang up", "the line test said intermittent fault",
        "neighbours on the street have the same dropouts", "it happens around seven every night"]),
    "bill_dispute": (0.18, [
        "I was overcharged on my last invoice", "there is a charge on my statement I do not recognise",
        "why did my direct debit go up", "you billed me twice this month",
        "I want a refund for the days without service", "the late payment fee is wrong"], [
        "the amount does not match my tariff", "please credit my account",
        "I was promised a loyalty discount", "the invoice shows an activation fee",
        "my bank shows two payments", "I need an itemised bill"]),
    "plan_change": (0.13, [
        "I would like to upgrade to fibre", "can I switch to the cheaper package",
        "please add the sports bundle", "I want faster download speeds on my plan",
        "is there a student deal I can move to"], [
        "what does the gigabit tier include", "how long is the new minimum term",
        "do I keep my landline number", "can the change start next month", "is the upgrade free"]),
    "router_setup": (0.11, [
        "how do I set up the new router", "the hub will not pair with my mesh extenders",
        "I cannot find the wifi password on the box", "need help configuring port forwarding",
        "the replacement modem arrived today"], [
        "the setup page will not load", "which cable goes in the grey socket",
        "the app says device not found", "I want to change the network name",
        "the lights stay blue and nothing happens"]),
    "moving_house": (0.08, [
        "I am moving house next month", "we relocate to a new flat on the first",
        "can I take my service to my new address", "moving in with my partner soon"], [
        "the postcode is in a fibre area", "what day can the engineer come",
        "do I need a new installation", "will there be a gap in service", "the landlord has no phone socket"]),
    "cancel_contract": (0.07, [
        "I want to cancel my contract", "please close my account", "I am leaving for another provider",
        "how do I end my service"], [
        "what is the early termination charge", "where do I send the equipment back",
        "I need a porting code", "the contract ends in march", "please confirm the cancellation in writing"]),
    "slow_speed": (0.05, [
        "speeds are much slower than advertised", "the speed test shows two megabits",
        "downloads crawl in the evenings", "streaming buffers all the time"], [
        "I pay for eighty megabits", "it was fine last week", "even wired to the hub it is slow",
        "uploads are the worst"]),
    "email_login": (0.04, [
        "I cannot log in to my webmail", "locked out of my email account",
        "password reset link never arrives", "my mailbox says storage full"], [
        "it says invalid credentials", "I changed phones recently", "the two step code does not come",
        "old messages disappeared"]),
}
OFF_TOPIC = ["hello is anyone there", "thanks that is all", "ok", "great service thank you so much",
             "sorry wrong chat", "can you call me back later", "test message please ignore",
             "good morning", "cheers bye", "what are your opening hours"]
POLITE = ["", "", "hi, ", "hello, ", "please help, ", "urgent: "]
CHANNELS = ("chat", "email", "phone")


def _message(rng: random.Random, intent: str, secondary: str | None) -> str:
    _, openers, details = INTENTS[intent]
    parts = [rng.choice(POLITE) + rng.choice(openers)]
    parts += rng.sample(details, rng.randint(1, 2))
    if secondary:
        _, s_open, s_details = INTENTS[secondary]
        parts.append("also " + rng.choice(s_open + s_details))
    return ", ".join(parts)


def rows() -> list[dict]:
    rng = random.Random(SEED)
    names = list(INTENTS)
    weights = [INTENTS[k][0] for k in names]
    start = dt.datetime(2025, 1, 6, 8, 0)
    out = []
    for i in range(N):
        created = start + dt.timedelta(minutes=97 * i + rng.randint(0, 90))
        row = {"ticket_id": f"HD-{10001 + i}", "created": created.isoformat(sep=" "),
               "channel": rng.choice(CHANNELS), "message": "", "intent": "", "intent_secondary": ""}
        if i in (41, 300, 555):  # blank messages: skipped and counted by the loader
            row["message"] = "   " if i == 300 else ""
        elif rng.random() < OFF_TOPIC_SHARE:
            row["message"] = rng.choice(OFF_TOPIC)
        else:
            intent = rng.choices(names, weights)[0]
            secondary = None
            if rng.random() < SECONDARY_RATE:
                pool = [k for k in names if k != intent]
                secondary = "bill_dispute" if intent != "bill_dispute" and rng.random() < BILLING_AS_SECONDARY \
                    else rng.choice(pool)
            row.update(message=_message(rng, intent, secondary), intent=intent, intent_secondary=secondary or "")
        out.append(row)
    return out


def main() -> None:
    here = Path(__file__).parent
    data = rows()
    with open(here / "intents.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(data[0]))
        w.writeheader()
        w.writerows(data)
    with open(here / "intents.jsonl", "w", encoding="utf-8") as f:
        for r in data:
            f.write(json.dumps({k: (v or None) if k.startswith("intent") else v for k, v in r.items()}) + "\n")


if __name__ == "__main__":
    main()
