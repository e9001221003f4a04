"""Neural Cleanse's verdict over the labels' trigger norms: the anomaly index, a robust
z-score ``|norm - median| / (1.4826 * MAD)``, and the labels flagged (norm below the
median, index above 2: a backdoor needs a *small* trigger). Pure numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from securitynet.errors import AttackError

#: MAD -> standard deviation of a normal distribution.
MAD_CONSISTENCY = 1.4826
#: The paper's threshold on the anomaly index.
ANOMALY_THRESHOLD = 2.0


def anomaly_index(norms: Sequence[float] | np.ndarray) -> np.ndarray:
    """``|norm - median| / (1.4826 * MAD)`` per label. With a MAD of zero a norm equal to
    the median scores 0 and any other norm infinity."""
    values = np.asarray(norms, dtype=np.float64)
    if values.ndim != 1 or len(values) < 3:
        raise AttackError("the anomaly index needs the norms of at least 3 labels")
    deviation = np.abs(values - np.median(values))
    mad = float(np.median(deviation))
    if mad == 0:
        return np.where(deviation == 0, 0.0, np.inf)
    return deviation / (MAD_CONSISTENCY * mad)


def flagged_labels(
    labels: Sequence[int], norms: Sequence[float], *, threshold: float = ANOMALY_THRESHOLD
) -> list[int]:
    """Labels whose norm lies below the median with an anomaly index above ``threshold``."""
    values = np.asarray(norms, dtype=np.float64)
    if len(values) != len(labels):
        raise AttackError(f"{len(labels)} labels but {len(values)} norms")
    index = anomaly_index(values)
    low = values < np.median(values)
    return [int(label) for label, hit in zip(labels, low & (index > threshold), strict=True) if hit]


__all__ = ["ANOMALY_THRESHOLD", "MAD_CONSISTENCY", "anomaly_index", "flagged_labels"]
