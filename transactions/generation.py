"""Realistic, deterministic transaction data for demos, tests and benchmarks.

The same (rows, customers, seed) always gives the same records, in the same order, so a
benchmark or a bug report can be reproduced from its command line. Records are yielded one at
a time with a bounded look-back, so a million rows need no more memory than a thousand.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from .validation import TRANSACTION_FIELDS

# Each state with the two-digit pincode prefixes of its postal circle (India Post's zones).
STATE_PINCODE_PREFIXES: dict[str, tuple[int, ...]] = {
    "Delhi": (11,),
    "Haryana": (12, 13),
    "Punjab": (14, 15, 16),
    "Himachal Pradesh": (17,),
    "Uttar Pradesh": (20, 21, 22, 23, 24, 25, 26, 27, 28),
    "Rajasthan": (30, 31, 32, 33, 34),
    "Gujarat": (36, 37, 38, 39),
    "Maharashtra": (40, 41, 42, 43, 44),
    "Madhya Pradesh": (45, 46, 47, 48),
    "Telangana": (50,),
    "Andhra Pradesh": (51, 52, 53),
    "Karnataka": (56, 57, 58, 59),
    "Tamil Nadu": (60, 61, 62, 63, 64),
    "Kerala": (67, 68, 69),
    "West Bengal": (70, 71, 72, 73, 74),
    "Odisha": (75, 76, 77),
    "Assam": (78,),
    "Bihar": (80, 84, 85),
}
PINCODES_PER_STATE = 40
FIRST_NAMES = (
    "Aarav Aditi Amit Ananya Arjun Diya Farhan Gaurav Ishaan Kavya Lakshmi Manoj Meera Neha "
    "Nikhil Pooja Priya Rahul Rajesh Ravi Rohan Sanjay Sara Simran Sneha Sunita Tanvi Varun "
    "Vikram Zoya Atharva Harpreet Imran Jaya Karan Lakshman Mohit Nandini Om Pallavi"
).split()
LAST_NAMES = (
    "Sharma Verma Patel Mehta Singh Kumar Gupta Reddy Iyer Nair Das Bose Khan Joshi Kulkarni "
    "Chatterjee Banerjee Rao Pillai Menon Shah Desai Agarwal Malhotra Kapoor Chauhan Yadav Mishra"
).split()
FIRST_DAY = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)
SPAN_SECONDS = 3 * 365 * 24 * 3600
DUPLICATE_RATE = 0.008  # an exact repeat of an earlier record: a client retrying
CONFLICT_RATE = 0.002  # an earlier key with another amount: a client's correction
LOOK_BACK = 1000


@dataclass(frozen=True, slots=True)
class _Customer:
    customer_id: int
    name: str
    mob_no: str
    state: str
    pincodes: tuple[str, ...]


def _pincodes_by_state(rng: random.Random) -> dict[str, list[str]]:
    pincodes = {}
    for state, prefixes in STATE_PINCODE_PREFIXES.items():
        codes = {f"{rng.choice(prefixes)}{rng.randrange(0, 10_000):04d}" for _ in range(PINCODES_PER_STATE)}
        pincodes[state] = sorted(codes)
    return pincodes


def _customers(rng: random.Random, count: int) -> list[_Customer]:
    pincodes = _pincodes_by_state(rng)
    states = list(STATE_PINCODE_PREFIXES)
    # Bigger states have more customers, as populations do.
    state_weights = [len(prefixes) for prefixes in STATE_PINCODE_PREFIXES.values()]
    customers = []
    for customer_id in range(1001, 1001 + count):
        state = rng.choices(states, weights=state_weights)[0]
        customers.append(
            _Customer(
                customer_id=customer_id,
                name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                mob_no=f"{rng.choice('6789')}{rng.randrange(0, 10**9):09d}",
                state=state,
                pincodes=tuple(rng.sample(pincodes[state], k=rng.choice((1, 1, 1, 2, 3)))),
            )
        )
    return customers


def generate_records(*, rows: int, customers: int, seed: int = 1) -> Iterator[dict[str, object]]:
    """Yield `rows` records as a client would send them (the amount as an exact string).

    Customer activity is skewed (a few customers transact far more than most) and amounts are
    log-normal; about 1% of records repeat an earlier key, most as exact duplicates, some with
    another amount (conflicts).
    """
    rng = random.Random(seed)
    people = _customers(rng, max(1, customers))
    # Pareto weights: a long tail of occasional customers and a head of frequent ones.
    weights = [rng.paretovariate(1.2) for _ in people]
    recent: deque[dict[str, object]] = deque(maxlen=LOOK_BACK)
    batch: list[_Customer] = []
    for _ in range(rows):
        roll = rng.random()
        if recent and roll < DUPLICATE_RATE + CONFLICT_RATE:
            repeated = dict(rng.choice(recent))
            if roll >= DUPLICATE_RATE:
                repeated["transaction_amount"] = _amount(rng)
            yield repeated
            continue
        if not batch:
            batch = rng.choices(people, weights=weights, k=1024)
        person = batch.pop()
        moment = FIRST_DAY + dt.timedelta(seconds=rng.randrange(SPAN_SECONDS))
        record = {
            "customer_id": person.customer_id,
            "name": person.name,
            "transaction_amount": _amount(rng),
            "mob_no": person.mob_no,
            "transaction_datetime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "pincode": rng.choice(person.pincodes),
            "state": person.state,
        }
        recent.append(record)
        yield record


def _amount(rng: random.Random) -> str:
    rupees = min(rng.lognormvariate(7.5, 1.3), 9_999_999)
    return f"{max(rupees, 1):.2f}"


def write_csv(records, out: io.TextIOBase) -> int:
    writer = csv.DictWriter(out, fieldnames=TRANSACTION_FIELDS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow(record)
        count += 1
    return count


def write_ndjson(records, out: io.TextIOBase) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
