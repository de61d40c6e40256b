"""Many processes, one partitioned listener: who reads which partition, and the hand-over.

Every process reading a partitioned listener — each ``--workers`` worker, each supervisor
on any host — is a **member**: it says it lives every ``membership.heartbeat`` (a sorted
set of members with their expiry, by the server's clock). Each partition has a **lease**
(owner, epoch, expiry: wire/leases.py) beside its stream. Every heartbeat each member
renews what it holds, computes the same balanced and sticky target from the same facts
(balance.py), gives up what it holds beyond its share and acquires what is free and meant
for it. No coordinator: the lease script grants a free lease to one caller.

A partition changes hands in this order, which keeps each key's order:

1. the giver stops reading it, lets its entries in flight settle (handled and acked, or
   left pending: the container's drain), still renewing the lease meanwhile; then
   releases the lease;
2. the taker acquires it (one epoch up), claims every pending entry of the partition's
   group to itself (XAUTOCLAIM … 0 JUSTID), and only then subscribes: a subscription
   reads its own pending entries first, oldest first, then new ones.

A member that stops renewing (killed, frozen, cut off) loses its leases ``lease_ttl``
after its last renewal; the others take its partitions at their next heartbeat. The
fence (listener/tenure.py) makes sure that a member that lost a lease — or may have —
starts, reads and acks nothing of that partition any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loguru import logger

from ..config.models import LEASE_TRUST, MembershipSettings
from ..errors import NoGroupError
from ..handler import StreamHandler
from ..listener.container import ListenerContainer
from ..listener.poll import Subscription
from ..listener.spec import ListenerSpec
from ..wire.leases import LeaseState
from ..wire.operator import RedisOperator
from ..wire.redis_errors import describe_unavailable, is_permanent, is_transient
from .balance import balanced_owners
from .keys import lease_key, members_key

T = TypeVar("T")

MEMBER_LIFE_BEATS = 4
"""A member whose heartbeat stopped this many heartbeats ago is off the member list (not
dealt partitions; ``status`` shows its live leases ``(no heartbeat)``) — sooner than its
leases expire (``lease_ttl``), which is what actually moves its partitions. Four: a round
makes up to three calls of at most one heartbeat each, so a slow but live member does
not flicker out."""


class Lease:
    """One held lease, as the fence sees it (implements listener/tenure.py's Tenure)."""

    def __init__(self, key: str, epoch: int, ttl: float, sent: float) -> None:
        self.key = key
        self._epoch = epoch
        self._ttl = ttl
        self._sent = sent
        self._lost = False
        self._renewal = asyncio.Event()

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def lost(self) -> bool:
        return self._lost or time.monotonic() > self._sent + self._ttl

    def trusted(self, until: float = 0.0) -> bool:
        return (not self._lost
                and time.monotonic() + until < self._sent + LEASE_TRUST * self._ttl)

    async def renewed(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._renewal.wait(), timeout)

    @property
    def age(self) -> float:
        """Seconds since the last renewal that succeeded was sent."""
        return time.monotonic() - self._sent

    def renew(self, sent: float) -> None:
        self._sent = sent
        self._wake()

    def lose(self) -> None:
        self._lost = True
        self._wake()

    def _wake(self) -> None:
        self._renewal.set()
        self._renewal = asyncio.Event()


class LeaseScope:
    """One partition's subscriptions, in the container only while this member holds the
    partition's lease. The features (rotation, recovery) register, unregister and look
    at subscriptions through it exactly as they would through the container (the
    ``Listeners`` contract of jobs/contract.py), and never know about leases."""

    def __init__(self, container: ListenerContainer, index: int, stream: str) -> None:
        self.index = index
        self.stream = stream
        self.lease_key = lease_key(stream)
        self.lease: Lease | None = None
        self.leaving = False
        self._container = container
        self._declared: dict[str, tuple[ListenerSpec, StreamHandler[Any]]] = {}

    @property
    def held(self) -> bool:
        return self.lease is not None and not self.lease.lost

    @property
    def subscriptions(self) -> Mapping[str, Subscription]:
        registered = self._container.subscriptions
        return {name: registered[name] for name in self._declared if name in registered}

    def register(self, spec: ListenerSpec, handler: StreamHandler[Any]) -> None:
        self._declared[spec.name] = (spec, handler)
        if self.lease is not None and not self.leaving:
            self._container.register(spec, handler, self.lease)

    async def unregister(self, name: str) -> None:
        self._declared.pop(name, None)
        await self._container.unregister(name)

    async def take(self, operator: RedisOperator, lease: Lease) -> int:
        """Hold the partition: claim what is pending (any consumer's) to this member,
        then subscribe. Returns how many entries were taken over."""
        self.lease, self.leaving = lease, False
        claimed = 0
        for spec, _ in self._declared.values():
            try:
                claimed += await operator.claim_all_pending(spec.stream, spec.group,
                                                            spec.consumer)
            except NoGroupError:  # a new stream: nothing pending; the first read creates it
                pass
            except Exception as exc:
                if not is_permanent(exc):
                    raise
                # A key that is not a stream, a permission: the subscription meets the same
                # refusal on its first command and says it the way it always does (exit 3
                # when every listener is refused), instead of a take-over retried forever.
        for spec, handler in self._declared.values():
            if spec.name not in self._container.subscriptions:
                self._container.register(spec, handler, lease)
        return claimed

    async def let_go(self) -> None:
        """Stop reading; the handlers running now finish (and are acked), what has not
        started stays pending for the next owner (``Subscription.request_handover``)."""
        await asyncio.gather(*(self._container.unregister(name, hand_over=True)
                               for name in list(self._declared)))


@dataclass
class LeasedListener:
    """One partitioned listener as its members share it."""

    name: str
    stream: str
    group: str
    member: str
    scopes: list[LeaseScope]
    rebalances: int = 0
    takeovers: list[float] = field(default_factory=list)
    """Seconds from a lease's request to its partition's subscription (pending entries
    claimed), most recent last: the taker's part of a hand-over."""
    releases: list[float] = field(default_factory=list)
    """Seconds from giving a partition up (reading stopped) to its lease's release (the
    running handlers settled), most recent last: the giver's part."""


class Membership:
    """This process's membership in every partitioned listener it reads."""

    def __init__(self, operator: RedisOperator, settings: MembershipSettings,
                 listeners: list[LeasedListener], static: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._operator = operator
        self._leases = operator.leases
        self.listeners = listeners
        self._static = static
        self._clock = clock
        self._ttl = settings.lease_ttl.total_seconds()
        self._ttl_ms = int(self._ttl * 1000)
        self._beat = settings.heartbeat.total_seconds()
        self._life_ms = int(min(self._ttl, MEMBER_LIFE_BEATS * self._beat) * 1000)
        self._task: asyncio.Task[None] | None = None
        self._chores: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._leaving = False
        """At stop: rounds only renew what is held (while it settles), never take."""
        self.renewal_failing = False
        """The last round could not renew (Redis unreachable): /healthz says so."""
        self.states: dict[str, LeaseState] = {}
        """Each partition's lease (by its partition name) at the last round."""
        self._said_down = False
        self._said_waiting = False
        self.copied_id: str | None = None
        """Said once this member id is seen in use by another live process (/healthz
        shows it beside ``standby``)."""
        self._foreign_since: dict[str, float] = {}
        """Partitions leased to this member id by another process: since when seen."""
        self.token = uuid.uuid4().hex[:12]
        """This process's incarnation, on every lease it is granted (wire/leases.py)."""

    @property
    def owned(self) -> int:
        """Partitions held now (a lease lost and still settling no longer counts)."""
        return sum(1 for ls in self.listeners for s in ls.scopes if s.held)

    async def start(self) -> None:
        """One round now (so this member reads what is free at once), then every
        heartbeat in the background."""
        await self._round()
        self._task = asyncio.create_task(self._run(), name="streamboot:membership")

    async def _run(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._beat)
            try:
                await self._round()
            except Exception as exc:  # a bug: said, and the next heartbeat tries again
                logger.opt(exception=exc).error("membership round failed")

    async def _round(self) -> None:
        for listener in self.listeners:
            try:
                await self._round_of(listener)
                if self._said_down:
                    self._said_down = False
                    logger.info("membership of {} (member {}): renewing again",
                                listener.name, listener.member)
                self.renewal_failing = False
            except Exception as exc:
                self.renewal_failing = True
                if not self._said_down:
                    self._said_down = True
                    reason = (describe_unavailable(exc) if is_transient(exc)
                              else f"{type(exc).__name__}: {exc}")
                    logger.warning("membership of {} (member {}): could not renew its "
                                   "leases ({}); it stops handling a partition {:g}s after "
                                   "its last renewal", listener.name, listener.member,
                                   reason, LEASE_TRUST * self._ttl)
            self._check_lapsed(listener)

    async def _round_of(self, listener: LeasedListener) -> None:
        me = listener.member
        scopes = listener.scopes
        await self._renew_held(listener)
        if self._leaving:
            return  # renewing what settles; no heartbeat: it has left the list
        members = await self._bounded(self._leases.heartbeat(
            members_key(listener.stream, listener.group), me, self._life_ms))
        states = await self._bounded(asyncio.gather(
            *(self._leases.state(s.lease_key) for s in scopes)))
        for scope, state in zip(scopes, states, strict=True):
            self.states[f"{listener.name}[p{scope.index}]"] = state
        owners = {s.index: st.live_owner for s, st in zip(scopes, states, strict=True)
                  if st.live_owner is not None}
        if me not in members:
            return
        self._check_copied_id(listener, states)
        target = balanced_owners(len(scopes), members, owners)
        logger.debug("membership round of {}: members {}, owners {}, target {}",
                     listener.name, members, owners, target)
        moved = False
        for scope in scopes:
            mine = target.get(scope.index) == me
            if scope.lease is not None and not mine and not scope.leaving:
                moved = True
                self._chore(self._hand_over(listener, scope, "rebalanced"))
            elif scope.lease is None and mine and owners.get(scope.index) in (None, me):
                # Held by "me" from another process (a restarted static member): the
                # script refuses until it expires; asking each heartbeat costs one call.
                took = await self._acquire(listener, scope)
                if not took and owners.get(scope.index) == me and not self._said_waiting:
                    self._said_waiting = True
                    logger.info("membership of {}: member {} waits for its earlier leases "
                                "(p{} …) to expire, within {:g}s (lease_ttl), then takes "
                                "them back", listener.name, me, scope.index, self._ttl)
                moved = took or moved
        if moved:
            listener.rebalances += 1

    def _check_copied_id(self, listener: LeasedListener, states: list[LeaseState]) -> None:
        """A lease owned by this member id but not held by this process, still live a
        whole ``lease_ttl`` after this process first saw it so: another live process
        renews it under the same id (a restarted static member's old lease is renewed by
        no one and expires within ``lease_ttl``). Safe — only one of them is ever granted
        the lease — but the copy would stand by without a word."""
        now = self._clock()
        for scope, state in zip(listener.scopes, states, strict=True):
            key = f"{listener.name}[p{scope.index}]"
            if scope.lease is not None or state.live_owner != listener.member:
                self._foreign_since.pop(key, None)
                continue
            since = self._foreign_since.setdefault(key, now)
            if self.copied_id is None and now - since > self._ttl + self._beat:
                self.copied_id = (f"member id {listener.member} is in use by another live "
                                  f"process too (it renews the lease of p{scope.index}); "
                                  "this process stands by: give each process its own "
                                  "member id")
                logger.warning("membership of {}: {}", listener.name, self.copied_id)

    async def _renew_held(self, listener: LeasedListener) -> None:
        held = [(s, s.lease) for s in listener.scopes if s.lease is not None]
        if not held:
            return
        sent = self._clock()
        results = await self._bounded(asyncio.gather(*(
            self._leases.renew(s.lease_key, listener.member, lease.epoch, self._ttl_ms)
            for s, lease in held)))
        for (scope, lease), renewed in zip(held, results, strict=True):
            if scope.lease is not lease:
                continue  # handed over meanwhile
            if renewed and not lease.lost:
                lease.renew(sent)
            else:
                self._lost(listener, scope, "another member holds it now" if not renewed
                           else "it expired before it could be renewed")

    async def _bounded(self, work: Awaitable[T]) -> T:
        """Each call of a round waits one heartbeat at most: a silent socket must not
        hold the renewals (the client's own socket_timeout is far longer)."""
        return await asyncio.wait_for(work, self._beat)

    def _check_lapsed(self, listener: LeasedListener) -> None:
        """Renewals failing: a lease past its ttl by our own reckoning is lost."""
        for scope in listener.scopes:
            if scope.lease is not None and scope.lease.lost and not scope.leaving:
                self._lost(listener, scope, "it was not renewed within lease_ttl")

    def _lost(self, listener: LeasedListener, scope: LeaseScope, why: str) -> None:
        lease = scope.lease
        if lease is None or scope.leaving:
            return
        lease.lose()
        scope.leaving = True
        logger.warning("{}[p{}]: lease lost ({}; epoch {}): nothing more of it is started "
                       "or acked here", listener.name, scope.index, why, lease.epoch)
        self._chore(self._drop(scope))

    async def _drop(self, scope: LeaseScope) -> None:
        await scope.let_go()
        scope.lease, scope.leaving = None, False

    async def _acquire(self, listener: LeasedListener, scope: LeaseScope) -> bool:
        sent = self._clock()
        grant = await self._bounded(self._leases.acquire(
            scope.lease_key, listener.member, self._ttl_ms, self.token))
        if not grant.granted:
            return False
        lease = Lease(scope.lease_key, grant.epoch, self._ttl, sent)
        try:
            claimed = await scope.take(self._operator, lease)
        except Exception as exc:  # not subscribed: give it back; the next round retries
            logger.warning("{}[p{}]: could not take its pending entries over ({}); the "
                           "lease is given back", listener.name, scope.index, exc)
            scope.lease = None
            lease.lose()
            with contextlib.suppress(Exception):
                await self._bounded(self._leases.release(scope.lease_key, listener.member,
                                                         grant.epoch))
            return False
        self.copied_id = None  # it holds a lease now: no longer standing by for a copy
        listener.takeovers.append(self._clock() - sent)
        del listener.takeovers[:-100]
        logger.info("{}[p{}]: owned here from now (epoch {}){}", listener.name, scope.index,
                    grant.epoch, f"; took over {claimed} pending" if claimed else "")
        return True

    async def _hand_over(self, listener: LeasedListener, scope: LeaseScope, why: str) -> None:
        """Give the partition up in order: stop reading, settle, then release."""
        lease = scope.lease
        if lease is None:
            return
        scope.leaving = True
        began = self._clock()
        await scope.let_go()
        try:
            await asyncio.wait_for(self._leases.release(scope.lease_key, listener.member,
                                                        lease.epoch), self._beat)
            listener.releases.append(self._clock() - began)
            del listener.releases[:-100]
        except Exception as exc:  # it then expires at lease_ttl
            logger.warning("{}[p{}]: could not release its lease ({}); it expires within "
                           "{:g}s", listener.name, scope.index, exc, self._ttl)
        lease.lose()
        scope.lease, scope.leaving = None, False
        logger.info("{}[p{}]: handed over ({})", listener.name, scope.index, why)

    def _chore(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def leave(self) -> None:
        """At stop: no more rounds; every partition settles, then its lease is released
        and this member leaves the list, so the others take over at their next heartbeat.
        A static member (``member_id``) leaves the list too but keeps its leases: restarted
        within ``lease_ttl`` it takes them back without them moving meanwhile; otherwise
        they expire and move."""
        self._leaving = True  # the rounds go on renewing while the partitions settle
        if self._chores:
            await asyncio.gather(*self._chores, return_exceptions=True)
        for listener in self.listeners:
            held = [s for s in listener.scopes if s.lease is not None and not s.leaving]
            with contextlib.suppress(Exception):
                await self._bounded(self._leases.heartbeat(
                    members_key(listener.stream, listener.group), listener.member,
                    self._life_ms, leave=True))
            if self._static:
                await asyncio.gather(*(s.let_go() for s in held))
                if held:
                    logger.info("membership of {}: member {} stopping; it keeps its leases "
                                "of {} for up to {:g}s (lease_ttl): restarted within that, "
                                "it takes them back, else they move to the other members",
                                listener.name, listener.member,
                                ",".join(f"p{s.index}" for s in held), self._ttl)
                continue
            await asyncio.gather(*(self._hand_over(listener, s, "stopping") for s in held),
                                 return_exceptions=True)
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
