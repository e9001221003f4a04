"""What we require of torch before letting it unpickle anything.

* torch >= 2.10: earlier weights-only unpicklers have known escapes (CVE-2026-24747).
* ``torch.load(weights_only=True)`` must really be restricted *now*, in this process. We pass
  ``weights_only=True`` explicitly, and torch (2.6 and later, read in
  ``torch/serialization.py``) lets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` override only a call
  that did *not* pass it. Reading the code once is not a defence against a patched or future
  torch, so we also check the behaviour: a tiny in-memory checkpoint whose pickle calls a
  harmless function of ours must be refused and the function must not have run. The check
  runs once per process and again whenever the relevant environment variables change.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import threading
import zipfile

import torch

from securitynet.loader._refusal import Refusal

logger = logging.getLogger(__name__)

MIN_TORCH = (2, 10)
_ENV_VARS = ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_WEIGHTS_ONLY_LOAD")

_lock = threading.Lock()
_verified: set[tuple[object, ...]] = set()
_canary_calls: list[int] = []


def _canary() -> None:
    """Called only if torch's weights-only unpickler let a foreign global through."""
    _canary_calls.append(1)


def torch_version() -> tuple[int, int]:
    release = torch.__version__.split("+")[0].split(".")
    try:
        return int(release[0]), int(release[1])
    except (IndexError, ValueError):  # an odd local build: trust nothing
        return (0, 0)


def _canary_checkpoint() -> bytes:
    payload = b"\x80\x02c" + f"{__name__}\n_canary\n".encode() + b")R."
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("canary/data.pkl", payload)
        zf.writestr("canary/byteorder", "little")
        zf.writestr("canary/version", "3\n")
    return buf.getvalue()


def require_safe_torch() -> None:
    """Raise Refusal unless torch is recent and weights-only loading holds."""
    version = torch_version()
    if version < MIN_TORCH:
        raise Refusal(
            "torch-too-old",
            f"torch {torch.__version__} is too old to read untrusted checkpoints "
            f"(need >= {MIN_TORCH[0]}.{MIN_TORCH[1]}, CVE-2026-24747)",
            hint="Upgrade torch: pip install 'torch>=2.10'.",
        )
    state = (torch.__version__, id(torch.load), *(os.environ.get(v) for v in _ENV_VARS))
    if state in _verified:
        return
    with _lock:
        if state in _verified:
            return
        calls_before = len(_canary_calls)
        refused = False
        try:
            torch.load(io.BytesIO(_canary_checkpoint()), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            refused = True
        except Exception as exc:  # any other failure is not proof that the unpickler is restricted
            logger.warning("weights-only self-check failed unexpectedly: %r", exc)
        if not refused or len(_canary_calls) != calls_before:
            raise Refusal(
                "weights-only-not-enforced",
                "torch.load(weights_only=True) did not refuse a foreign global in this process; "
                "no pickle-based checkpoint will be read",
                hint="Check TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD and anything that patches torch.load.",
            )
        _verified.add(state)
