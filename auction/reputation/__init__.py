"""Reputation: event-sourced scores that feed the market (work in progress)."""

from auction.reputation.audit import (
    AuditSchedule,
    audit_sample,
    commit_seed,
    new_seed,
    verify_sample,
    verify_seed,
)
from auction.reputation.tiers import RENDER_TIERS, Tier, TierSchedule

__all__ = [
    "RENDER_TIERS",
    "AuditSchedule",
    "Tier",
    "TierSchedule",
    "audit_sample",
    "commit_seed",
    "new_seed",
    "verify_sample",
    "verify_seed",
]
