"""Where the tests find the repository, their fixtures and ../shared (beside the checkout in CI),
wherever in tests/ the test file lives."""

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
SHARED_DIR = REPO_DIR.parent / "shared"
