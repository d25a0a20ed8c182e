"""Reputation: event-sourced provider scores that feed the market.

Record what providers did as `Event` s in a `ReputationBook`, choose a model (beta
reputation, iExec's score), and hand the market plain scores::

    from auction.reputation import Event, ReputationBook
    rep = ReputationBook("beta")
    rep.record(Event(id="e1", provider="p1", time=0.0, outcome="completed"))
    market = Market(order_book, reputation=rep.scores())

`eigentrust` computes global trust from tenant-to-provider ratings. docs/reputation.md has the
formulas, parameters, sources and what each model resists. Tiers (`TierSchedule`) and audit
sampling (`audit_sample`) read the scores: docs/tiers-and-audits.md. Importing this package loads
neither numba nor scipy: kernels compile, and scipy loads, on first use.
"""

from auction.reputation.audit import (
    AuditSchedule,
    audit_sample,
    commit_seed,
    new_seed,
    verify_sample,
    verify_seed,
)
from auction.reputation.book import SCHEMA, ReputationBook, UnknownReputationSchemaError
from auction.reputation.eigentrust import (
    EigenTrustResult,
    eigentrust,
    eigentrust_arrays,
    local_trust,
)
from auction.reputation.events import (
    ConflictingEventError,
    Event,
    EventBatch,
    EvidenceWeights,
    InvalidEventError,
    InvalidReputationError,
    Outcome,
)
from auction.reputation.models import (
    DEFAULT_HALF_LIFE,
    MODELS,
    NEWCOMER_SCORE,
    BetaModel,
    BetaOpinion,
    IExecModel,
    ReputationModel,
    get_model,
)
from auction.reputation.tiers import RENDER_TIERS, Tier, TierSchedule

__all__ = [
    "DEFAULT_HALF_LIFE",
    "MODELS",
    "NEWCOMER_SCORE",
    "RENDER_TIERS",
    "SCHEMA",
    "AuditSchedule",
    "BetaModel",
    "BetaOpinion",
    "ConflictingEventError",
    "EigenTrustResult",
    "Event",
    "EventBatch",
    "EvidenceWeights",
    "IExecModel",
    "InvalidEventError",
    "InvalidReputationError",
    "Outcome",
    "ReputationBook",
    "ReputationModel",
    "Tier",
    "TierSchedule",
    "UnknownReputationSchemaError",
    "audit_sample",
    "commit_seed",
    "eigentrust",
    "eigentrust_arrays",
    "get_model",
    "local_trust",
    "new_seed",
    "verify_sample",
    "verify_seed",
]
