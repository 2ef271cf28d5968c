#!/usr/bin/env python3
"""The scheduler daemon: ``python scheduler.py``.

Fires scheduled campaigns from the job store in the product's database (APScheduler 3.11,
SQLAlchemyJobStore) and, on one machine with SQLite, sends them in-process. A second copy
pointed at the same PostgreSQL store waits as a standby. Configuration comes from the
environment, exactly as for the ``newsletter`` command; ``newsletter scheduler`` is the same.
"""

from newsletter.cli import scheduler_main

if __name__ == "__main__":
    scheduler_main()
