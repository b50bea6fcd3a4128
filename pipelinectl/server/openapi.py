"""Print the API's OpenAPI document: `python -m pipelinectl.server.openapi > docs/openapi.json`."""

from __future__ import annotations

import json
import sys
from typing import Any


def document() -> dict[str, Any]:
    from .app import create_app
    from .auth import Authenticator

    return create_app(None, Authenticator({})).openapi()


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
