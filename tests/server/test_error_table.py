"""The server speaks errors.py's one table: HTTP status <-> canonical code, never a copy of it."""

from __future__ import annotations

import pytest

from pipelinectl.errors import CANONICAL, ConflictError, PipelinectlError
from pipelinectl.server.app import canonical_code
from pipelinectl.server.openapi import document


def _error_classes() -> list[type[PipelinectlError]]:
    seen, todo = [], [PipelinectlError]
    while todo:
        cls = todo.pop(0)
        seen.append(cls)
        todo += cls.__subclasses__()
    return seen


@pytest.mark.parametrize("code, cls", sorted(CANONICAL.items()))
def test_each_canonical_class_status_reads_back_as_a_code_of_that_family(code, cls):
    """A status answers with the code of the most general class that declares it (409 is FAILED_PRECONDITION)."""
    back = canonical_code(cls.http_status)
    owner = CANONICAL[back]
    assert owner.http_status == cls.http_status
    assert issubclass(cls, owner) or owner is cls, (code, back)


def test_statuses_declared_only_by_errors_py_are_known_to_the_server():
    for cls in _error_classes():
        assert canonical_code(cls.http_status) in CANONICAL, cls
    assert canonical_code(409) == ConflictError.code
    assert canonical_code(504) == "DEADLINE_EXCEEDED"
    assert canonical_code(405) == "INVALID_ARGUMENT" and canonical_code(413) == "INVALID_ARGUMENT"
    assert canonical_code(599) == "INTERNAL"


def test_documented_error_answers_name_their_canonical_code():
    for path, item in document()["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                if status.isdigit() and int(status) >= 400:
                    assert answer["description"].startswith(canonical_code(int(status))), (method, path, status)
