#!/usr/bin/env python3
"""Write audiences/demo.csv: about 300 made-up subscribers in the project's own CSV format.

Deterministic (seeded), so re-running it reproduces the committed file byte for byte. Every
address is on example.com / example.org / example.net (reserved for documentation, RFC 2606):
nobody real can be mailed from the demo. A few addresses are mixed-case and one person appears
twice, to show the importer's normalising and merging.

    python scripts/make_demo_audience.py [--out audiences/demo.csv] [--count 300]
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20240501
HEADER = [
    "email",
    "first_name",
    "last_name",
    "timezone",
    "locale",
    "tags",
    "consent_source",
    "consent_at",
    "consent_text_version",
    "state",
]
DOMAINS = ["example.com", "example.org", "example.net"]
FIRST_NAMES = [
    "Aisha",
    "Alejandro",
    "Amara",
    "Ana",
    "Andrei",
    "Anjali",
    "Ben",
    "Bianca",
    "Carlos",
    "Chen",
    "Chloe",
    "Daniel",
    "Deepa",
    "Diego",
    "Elena",
    "Emeka",
    "Emma",
    "Fatima",
    "Finn",
    "Grace",
    "Hana",
    "Hiroshi",
    "Ines",
    "Isaac",
    "Jamal",
    "Jane",
    "Javier",
    "Jin",
    "Joy",
    "Kai",
    "Kavya",
    "Keanu",
    "Laila",
    "Liam",
    "Lucia",
    "Mateo",
    "Maya",
    "Mei",
    "Mohammed",
    "Nadia",
    "Noah",
    "Olivia",
    "Omar",
    "Priya",
    "Rafael",
    "Rosa",
    "Sam",
    "Santiago",
    "Sofia",
    "Tariq",
    "Thandiwe",
    "Tomás",
    "Yara",
    "Yuki",
    "Zoe",
    "Zainab",
    "Ingrid",
    "Lars",
    "Siobhan",
    "Declan",
]
LAST_NAMES = [
    "Abe",
    "Adeyemi",
    "Ahmed",
    "Alvarez",
    "Andersson",
    "Baker",
    "Banerjee",
    "Becker",
    "Brennan",
    "Campbell",
    "Chen",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fernández",
    "Fischer",
    "García",
    "Gupta",
    "Haddad",
    "Hughes",
    "Ito",
    "Jensen",
    "Johnson",
    "Kaur",
    "Kim",
    "Kowalski",
    "Lee",
    "López",
    "Martin",
    "Murphy",
    "Nakamura",
    "Nguyen",
    "Novak",
    "O'Brien",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Reyes",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Tanaka",
    "Thompson",
    "Walker",
    "Wang",
    "Williams",
    "Yilmaz",
    "Zhang",
]
# (IANA zone, locale, US state or "") with rough weights: the clinic's readers are mostly American.
PLACES = [
    ("America/New_York", "en-US", "NY", 14),
    ("America/New_York", "en-US", "MA", 5),
    ("America/Chicago", "en-US", "IL", 8),
    ("America/Chicago", "en-US", "TX", 6),
    ("America/Denver", "en-US", "CO", 5),
    ("America/Phoenix", "en-US", "AZ", 3),
    ("America/Los_Angeles", "en-US", "CA", 12),
    ("America/Los_Angeles", "en-US", "OR", 6),
    ("America/Los_Angeles", "en-US", "WA", 5),
    ("America/Anchorage", "en-US", "AK", 1),
    ("Pacific/Honolulu", "en-US", "HI", 1),
    ("America/New_York", "es-US", "FL", 3),
    ("Europe/London", "en-GB", "", 5),
    ("Europe/Dublin", "en-IE", "", 2),
    ("Europe/Berlin", "de-DE", "", 3),
    ("Europe/Paris", "fr-FR", "", 2),
    ("Europe/Madrid", "es-ES", "", 2),
    ("Europe/Stockholm", "sv-SE", "", 1),
    ("Asia/Tokyo", "ja-JP", "", 2),
    ("Asia/Singapore", "en-SG", "", 2),
    ("Asia/Kolkata", "en-IN", "", 2),
    ("Asia/Seoul", "ko-KR", "", 1),
    ("Australia/Sydney", "en-AU", "", 3),
    ("Australia/Melbourne", "en-AU", "", 2),
    ("Australia/Perth", "en-AU", "", 1),
]
INTERESTS = [("ketamine", 30), ("depression", 30), ("anxiety", 30), ("ptsd", 15), ("mindfulness", 20), ("family", 12)]
SOURCES = ["website signup", "clinic front desk", "webinar: ketamine-assisted therapy", "referral"]
CONSENT_TEXT_VERSION = "2024-01"
START = datetime(2024, 1, 15, tzinfo=timezone.utc)


def _tags(rng: random.Random) -> list[str]:
    tags = [tag for tag, percent in INTERESTS if rng.randrange(100) < percent]
    if rng.randrange(100) < 8:
        tags.append("clinician")
    return tags


def make_rows(count: int) -> list[list[str]]:
    rng = random.Random(SEED)
    places = [place for place in PLACES for _ in range(place[3])]
    rows: list[list[str]] = []
    used: set[str] = set()
    while len(rows) < count:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = f"{first}.{last}".lower().replace("'", "")
        local = local.translate(str.maketrans("áéíóúñ", "aeioun"))
        if local in used:
            local = f"{local}{rng.randrange(10, 99)}"
        if local in used:
            continue
        used.add(local)
        domain = rng.choice(DOMAINS)
        email = f"{local}@{domain}"
        if rng.randrange(100) < 3:  # typed with capitals, as people do
            email = ".".join(part.capitalize() for part in local.split(".")) + "@" + domain.capitalize()
        zone, locale, state, _ = rng.choice(places)
        joined = START + timedelta(days=rng.randrange(0, 650), minutes=rng.randrange(0, 24 * 60))
        rows.append(
            [
                email,
                first,
                last,
                zone,
                locale,
                ";".join(_tags(rng)),
                rng.choice(SOURCES),
                joined.strftime("%Y-%m-%dT%H:%M:%SZ"),
                CONSENT_TEXT_VERSION,
                state,
            ]
        )
    # One person signed up twice: the address in capitals, a later interest, no names. The
    # importer merges the two rows (tags unioned, later non-empty values win).
    twin = rows[41]
    rows.insert(
        180,
        [
            twin[0].upper(),
            "",
            "",
            "",
            "",
            "mindfulness",
            "webinar: ketamine-assisted therapy",
            "2025-06-02T17:30:00Z",
            CONSENT_TEXT_VERSION,
            twin[9],
        ],
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "audiences" / "demo.csv")
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    rows = make_rows(args.count)
    with args.out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
