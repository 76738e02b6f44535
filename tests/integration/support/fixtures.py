"""Types of the shared fixtures, so test code that declares steps stays type-checked."""

from __future__ import annotations

from collections.abc import Callable

import surefoot as sf

MakeApp = Callable[..., sf.App]
StartWorker = Callable[..., sf.Worker]
