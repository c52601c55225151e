"""The fault suite's table: each case adds a row (``faults.harness.add_row``); it is printed at the end."""

from tests.e2e.faults.harness import ROWS, render_table


def pytest_terminal_summary(terminalreporter):
    if ROWS:
        terminalreporter.section("fault-injection table")
        terminalreporter.write_line(render_table(ROWS))
