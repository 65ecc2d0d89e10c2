"""Fault-injection hooks for the crash-safety tests, in one place.

Each hook is inert unless its environment variable is set; only tests set them. They widen the windows
in which a crash does damage (so a test can kill a process inside a save) or crash on purpose at a known
point (so a test can check what a restart finds):

- ``NANOCHAT_NEXT_TEST_SLEEP_BETWEEN_FILES=SECONDS``: pause between the files of a checkpoint save.
- ``NANOCHAT_NEXT_TEST_CRASH_AFTER_SAVE=STEP``: die (``os._exit(17)``, no cleanup) right after saving STEP.
"""

from __future__ import annotations

import os
import time

SLEEP_BETWEEN_FILES = "NANOCHAT_NEXT_TEST_SLEEP_BETWEEN_FILES"
CRASH_AFTER_SAVE = "NANOCHAT_NEXT_TEST_CRASH_AFTER_SAVE"
CRASH_EXIT_CODE = 17


def pause_between_files() -> None:
    if os.environ.get(SLEEP_BETWEEN_FILES):
        time.sleep(float(os.environ[SLEEP_BETWEEN_FILES]))


def crash_after_save(step: int) -> None:
    if os.environ.get(CRASH_AFTER_SAVE) == str(step):
        os._exit(CRASH_EXIT_CODE)  # a simulated crash: no finally blocks, no flushing
