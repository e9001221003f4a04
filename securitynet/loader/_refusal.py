"""The internal refusal signal of the safe reader.

Checks deep in the readers raise :class:`Refusal` with a stable code and a sentence; the
public functions in :mod:`securitynet.loader.safe` turn it into an
:class:`~securitynet.errors.UnsafeCheckpointError` that names the file and its format.
"""

from __future__ import annotations


class Refusal(Exception):
    """Why a checkpoint is not read: ``code`` is stable (tests, JSON), ``detail`` is for people.

    ``format`` refines the sniffed format when a check learnt more (a zip that turned out
    to be TorchScript, or no torch checkpoint at all).
    """

    def __init__(
        self, code: str, detail: str, *, format: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.format = format  # set when the check learnt the format better than the sniff
        self.hint = (
            hint  # replaces UnsafeCheckpointError's hint when the fix is not "get another file"
        )
