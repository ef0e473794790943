"""What erasure means for models already trained: the erased user is masked until the next training.

``DELETE /v1/users/{id}`` deletes the user's rows from the store at once, but a served model
version was fitted on them: the recommender still holds the user's history and would answer
with a personalised list. Retraining on every erasure would put a full training on a request, so
the service *masks* instead: a user erased after a model version was trained gets the
non-personalised answer (the store's popular items, which no longer count the user) from that
version. The next ``cartlift train --all`` (or ``POST /v1/admin/train``) fits on the store without
the user and the mask no longer matters.

The mask is the audit log itself: erasures are recorded under a keyed hash of the user id
(`audit_subject`), so the service can recognise an erased user after a restart without the log
keeping the id it erased. The secret is ``CARTLIFT_SERVE_AUDIT_KEY``, else the pseudonymisation
secret, else a random one kept in ``audit.key`` in the model registry (readable by its owner only).
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from cartlift.serve._keys import audit_subject
from cartlift.serve._settings import ServeSettings

__all__ = ["ErasedUsers", "audit_secret"]


def audit_secret(settings: ServeSettings) -> str:
    """The secret of the audit log's keyed hashes (see the module docstring for where it comes from)."""
    for configured in (settings.audit_key, settings.pseudonymise_key):
        if configured is not None:
            return configured.get_secret_value()
    file = settings.registry_dir() / "audit.key"
    if not file.is_file():
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return Path(file).read_text().strip()


class ErasedUsers:
    """The erasures the audit log records, by keyed subject, with when each happened.

    Parameters
    ----------
    secret : str
        The audit secret (`audit_secret`).
    """

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._at: dict[str, datetime] = {}

    def subject(self, user_id: str) -> str:
        """The audit log's name for ``user_id``."""
        return audit_subject(user_id, self.secret)

    def add(self, subject: str, at: datetime) -> None:
        """Record an erasure (``at`` naive UTC, as the store keeps times)."""
        self._at[subject] = max(at, self._at.get(subject, at))

    def masked(self, user_id: str, trained_at: str | None) -> bool:
        """True when ``user_id`` was erased after the model trained at ``trained_at`` (ISO time).

        A model of unknown training time is assumed older than every erasure.
        """
        if not self._at:
            return False
        at = self._at.get(self.subject(user_id))
        if at is None:
            return False
        if trained_at is None:
            return True
        trained = datetime.fromisoformat(trained_at)
        if trained.tzinfo is not None:
            trained = trained.astimezone(UTC).replace(tzinfo=None)
        # `trained_at` has whole seconds: an erasure in the same second as the training counts as after
        return at >= trained.replace(microsecond=0)
