"""Auth-profile state kept in the process: the store's protocol and the store a single process
(or a deployment without Redis) uses. The policy is `routing.cooldown`; `routing.cooldown_store`
has the Redis store and picks one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from routing.cooldown import (
    DEFAULT_SCHEDULE,
    FRESH,
    Failure,
    ProfileState,
    Schedule,
    apply_failure,
    apply_success,
)
from routing.cooldown_carry import carry_over

Update = Callable[[ProfileState], ProfileState]


class CooldownStore(Protocol):
    async def get_many(self, org_id: str, profile_ids: Sequence[str]) -> dict[str, ProfileState]:
        """States of the given profiles in one read; unknown profiles are absent."""
        ...

    async def record_failure(
        self, org_id: str, profile_id: str, failure: Failure, now: float
    ) -> ProfileState: ...

    async def record_success(self, org_id: str, profile_id: str, model: str, now: float) -> ProfileState: ...

    async def clear(self, org_id: str, profile_id: str) -> None:
        """Forget a profile's state (its key was replaced, or it was deleted)."""
        ...

    async def carry_over(self, org_id: str, profile_id: str, imported: ProfileState) -> ProfileState:
        """Lay windows and counters imported from another system over the profile's state
        (`routing.cooldown.carry_over`); idempotent."""
        ...

    async def aclose(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...


class InProcessCooldownStore:
    """For a single process. All updates run on the event loop without awaiting, so they are atomic."""

    def __init__(self, schedule: Schedule = DEFAULT_SCHEDULE) -> None:
        self._schedule = schedule
        self._states: dict[tuple[str, str], ProfileState] = {}

    async def get_many(self, org_id: str, profile_ids: Sequence[str]) -> dict[str, ProfileState]:
        out: dict[str, ProfileState] = {}
        for pid in profile_ids:
            state = self._states.get((org_id, pid))
            if state is not None:
                out[pid] = state
        return out

    def _update(self, org_id: str, profile_id: str, update: Update) -> ProfileState:
        state = update(self._states.get((org_id, profile_id), FRESH))
        self._states[(org_id, profile_id)] = state
        return state

    async def record_failure(
        self, org_id: str, profile_id: str, failure: Failure, now: float
    ) -> ProfileState:
        return self._update(org_id, profile_id, lambda s: apply_failure(s, failure, now, self._schedule))

    async def record_success(self, org_id: str, profile_id: str, model: str, now: float) -> ProfileState:
        return self._update(org_id, profile_id, lambda s: apply_success(s, model, now))

    async def clear(self, org_id: str, profile_id: str) -> None:
        self._states.pop((org_id, profile_id), None)

    async def carry_over(self, org_id: str, profile_id: str, imported: ProfileState) -> ProfileState:
        return self._update(org_id, profile_id, lambda s: carry_over(s, imported))

    async def aclose(self) -> None:
        return None
