"""Drills: incident rehearsals as files (docs/drills.md).

loader (read and check a file, every error with its line), expr (assertions on
JSON output), runner (hypothesis, method, rollbacks on every path, the journal),
junit (the journal as a JUnit report).
"""
