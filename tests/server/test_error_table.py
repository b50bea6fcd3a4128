"""The server speaks errors.py's one table: HTTP status <-> canonical code, never a copy of it."""

from __future__ import annotations

import pytest

from pipelinectl.errors import (
    CANONICAL,
    HTTP_STATUS_ERRORS,
    ConflictError,
    PipelinectlError,
    UnprocessableError,
    error_class_for_status,
)
from pipelinectl.server.app import canonical_code
from pipelinectl.server.openapi import document


def _error_classes() -> list[type[PipelinectlError]]:
    seen, todo = [], [PipelinectlError]
    while todo:
        cls = todo.pop(0)
        seen.append(cls)
        todo += cls.__subclasses__()
    return seen


@pytest.mark.parametrize("status, cls", sorted(HTTP_STATUS_ERRORS.items()))
def test_a_status_answers_with_the_code_of_its_error_class(status, cls):
    assert canonical_code(status) == cls.code
    assert CANONICAL[cls.code] is cls or issubclass(cls, CANONICAL[cls.code])  # the client maps it back


def test_statuses_no_class_claims_and_shared_ones():
    for cls in _error_classes():
        assert canonical_code(cls.http_status) in CANONICAL, cls
    assert canonical_code(409) == ConflictError.code  # not ALREADY_EXISTS
    assert canonical_code(UnprocessableError.http_status) == "INVALID_ARGUMENT"
    assert error_class_for_status(422) is UnprocessableError  # a client reads a bare 422 as a usage error
    assert canonical_code(504) == "DEADLINE_EXCEEDED"
    assert canonical_code(405) == "INVALID_ARGUMENT" and canonical_code(413) == "INVALID_ARGUMENT"
    assert canonical_code(500) == "INTERNAL" and canonical_code(599) == "INTERNAL"


def test_documented_error_answers_name_their_canonical_code():
    for path, item in document()["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                if status.isdigit() and int(status) >= 400:
                    assert answer["description"].startswith(canonical_code(int(status))), (method, path, status)
