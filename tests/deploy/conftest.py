"""Deploy-test fixtures: the unit tests' short daemon run (fake Argilla), whose /metrics the dashboards and alert
rules must match."""

from tests.unit.conftest import world  # noqa: F401  (a fixture, re-exported for tests/deploy)
