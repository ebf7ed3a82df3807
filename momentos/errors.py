"""Typed errors, classified once.

Every failure momentos reports is one of these. Each says whether it is worth retrying and what
kind of problem it is, so the admin reads "the Jira user cannot edit field Experience score on
project OPS", not a traceback.
"""

from __future__ import annotations

from enum import Enum


class Category(str, Enum):
    CONFIGURATION = "configuration"  # fix credentials, permissions or mapping
    TRANSIENT = "transient"  # wait and retry
    PLATFORM = "platform"  # the platform refused or answered something unexpected
    BUG = "bug"  # momentos did something wrong


class MomentosError(Exception):
    """Base class: a message an admin can act on."""

    category: Category = Category.BUG
    retriable: bool = False

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(MomentosError):
    """The configuration is invalid; ``problems`` lists every problem found."""

    category = Category.CONFIGURATION

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class AuthError(MomentosError):
    """401/403: credentials or permissions; retrying will not help."""

    category = Category.CONFIGURATION


class TLSVerificationError(MomentosError):
    """The platform's certificate could not be verified: a trust setting, not an outage."""

    category = Category.CONFIGURATION


class NotFoundError(MomentosError):
    category = Category.CONFIGURATION


class TransientError(MomentosError):
    """429/5xx/connection problems that outlived the retry budget."""

    category = Category.TRANSIENT
    retriable = True


class PlatformError(MomentosError):
    """The platform rejected a request for a reason tied to the data (400, 409, ...)."""

    category = Category.PLATFORM


class BudgetExhausted(MomentosError):
    """The per-run request budget (``max_requests``) is used up; the run stops cleanly."""

    category = Category.TRANSIENT
    retriable = True
