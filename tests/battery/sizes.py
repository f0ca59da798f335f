"""The battery scripts' check options: none by default (check's defaults), or the sizes a test asks
for through the environment variable ``PPL_SUITE_BATTERY_SIZES`` (a JSON object of ``check`` keyword
arguments, e.g. ``{"steps": 300}``)."""

import json
import os

VARIABLE = "PPL_SUITE_BATTERY_SIZES"


def options() -> dict:
    return json.loads(os.environ.get(VARIABLE, "") or "{}")
