"""Test doubles and process helpers shared by the test suites."""
