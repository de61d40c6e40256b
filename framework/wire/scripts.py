"""The Lua scripts, in one place, so the async operator and the sync ownership keeper run
the same text. Each touches a single stream key, or keys that share its hash slot, so each
runs unchanged on Redis Cluster."""

from __future__ import annotations

# Creates the stream (with its group when one is given) and sets its TTL in one step,
# so no crash or concurrent creator can leave a stream without expiry behind.
CREATE_STREAM_WITH_TTL = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[2] ~= '' then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[2], ARGV[3], 'MKSTREAM')
else
  redis.call('XADD', KEYS[1], 'MAXLEN', '0', '*', 'streamboot', 'init')
end
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1
"""

# XCLAIM only the ids this consumer still owns. A plain XCLAIM would take an entry back
# from a consumer that legitimately reclaimed it, and both would handle it. Says what became
# of the others, as RENEW_OWNED does (an owned id XCLAIM does not return was deleted).
# ARGV: group, consumer, justid ('1' resets idle only; '0' also counts a delivery), ids…
# Returns {claimed ids, taken ids, deleted ids, 0}.
CLAIM_IF_OWNER = """
local claimed, taken, deleted = {}, {}, {}
for i = 4, #ARGV do
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #row > 0 and row[1][2] == ARGV[2] then
    local reply
    if ARGV[3] == '1' then
      reply = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
      reply = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID',
                         'RETRYCOUNT', row[1][4] + 1)
    end
    if #reply > 0 then claimed[#claimed + 1] = ARGV[i] else deleted[#deleted + 1] = ARGV[i] end
  elseif #row > 0 then
    taken[#taken + 1] = ARGV[i]
  elseif #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i]) == 0 then
    deleted[#deleted + 1] = ARGV[i]
  end
end
return {claimed, taken, deleted, 0}
"""

# The ownership keeper's renewal (listener/ownership.py), and the check a listener makes
# before it starts entries whose ownership it cannot vouch for. Resets the idle time of the
# ids this consumer still owns, and of its pending entries above ARGV[3] (entries delivered
# by a read whose reply it has not received yet), and says what became of the others:
# taken over by another consumer, or deleted from the stream (XDEL, XTRIM). XCLAIM drops a
# deleted entry from the PEL (Redis 7), so an owned id it does not return was deleted too.
# An id neither pending nor deleted was acknowledged (by this consumer or, XACK being
# group-wide, by another). ARGV: group, consumer, after ('' = none), how many such entries
# at most, ids… Returns {touched ids, taken ids, deleted ids, how many unreceived renewed}.
RENEW_OWNED = """
local mine, taken, deleted = {}, {}, {}
for i = 5, #ARGV do
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #row > 0 then
    if row[1][2] == ARGV[2] then mine[#mine + 1] = ARGV[i] else taken[#taken + 1] = ARGV[i] end
  elseif #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i]) == 0 then
    deleted[#deleted + 1] = ARGV[i]
  end
end
local ahead = {}
if ARGV[3] ~= '' then
  for _, row in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '(' .. ARGV[3], '+',
                                  tonumber(ARGV[4]), ARGV[2])) do
    ahead[#ahead + 1] = row[1]
  end
end
local function touch(ids)
  local claimed = {}
  for start = 1, #ids, 1000 do
    local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
    for i = start, math.min(start + 999, #ids) do args[#args + 1] = ids[i] end
    args[#args + 1] = 'JUSTID'
    for _, id in ipairs(redis.call(unpack(args))) do claimed[id] = true end
  end
  return claimed
end
local claimed = touch(mine)
local touched = {}
for _, id in ipairs(mine) do
  if claimed[id] then touched[#touched + 1] = id else deleted[#deleted + 1] = id end
end
touch(ahead)
return {touched, taken, deleted, #ahead}
"""

# The recovery job's claim: one entry at a time (see jobs/recovery.py), with its delivery
# count. XAUTOCLAIM COUNT 1 claims at most one entry, so only the entry about to be handled
# has its delivery counter raised; up to ARGV[5] steps of the PEL are scanned per call.
# ARGV: group, consumer, min idle (ms), cursor, steps. Returns
# {cursor, entry or false, ids deleted while pending, deliveries}.
RECLAIM_ONE = """
local cursor = ARGV[4]
local deleted = {}
for step = 1, tonumber(ARGV[5]) do
  local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', 1)
  cursor = reply[1]
  for _, id in ipairs(reply[3] or {}) do deleted[#deleted + 1] = id end
  local entry = reply[2][1]
  if entry then
    local row = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
    return {cursor, entry, deleted, row[1][4]}
  end
  if cursor == '0-0' then break end
end
return {cursor, false, deleted, 0}
"""

# Dead-letter one entry: XADD to the DLQ and XACK the source in one atomic step, only
# while this consumer still owns it, so a crash or a race neither loses nor duplicates.
# KEYS: source stream, dead-letter stream (same slot). ARGV: group, consumer, id, fields…
DEAD_LETTER = """
local row = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #row == 0 or row[1][2] ~= ARGV[2] then return false end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return id
"""

# XRANGE through a script, so the reply can be read undecoded and parsed by the framework:
# a field name given twice and non-UTF-8 bytes survive (decoding.py). ARGV: start, end, count.
RANGE = "return redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', ARGV[3])"

# IdempotentScript's script around the user's body: the marker is KEYS[1] and its TTL (ms)
# ARGV[1]; both are removed before the body runs, so the body sees its own KEYS/ARGV from 1.
# The marker is set once the body has *returned*: Redis keeps a script's writes made before
# an error (no rollback), so a marker written first outlived a body that then failed (a
# WRONGTYPE, an overflow) and its retry skipped the effect as applied — acked, lost.
# The marker says "2" (applied) until the handler has succeeded and its ack pipeline sets
# "1" (handled): an entry whose handler failed after the effect is handled again — the
# script a no-op then, the rest of the handler (a follow-up publish, say) run once more —
# instead of being skipped as done by the batch's marker check.
_IDEMPOTENT_HEAD = """
local marker = table.remove(KEYS, 1)
local ttl = table.remove(ARGV, 1)
local own = '1 ' .. table.remove(ARGV, 1)
local found = redis.call('GET', marker)
if found and found ~= own then
{touch}  return false
end
local result = (function()
"""

# With a WAIT that follows (idempotency.durability), a marker found is touched (PEXPIRE,
# its TTL from now), so the call writes either way and the WAIT after it covers the
# earlier call's effect too — replication is in order — instead of counting only this
# connection's older writes.
_TOUCH = "  redis.call('PEXPIRE', marker, ttl)\n"

_IDEMPOTENT_TAIL = """
end)()
redis.call('SET', marker, '2', 'PX', ttl)
return result
"""


def idempotent_script(body: str, durable: bool = False) -> str:
    """The user's ``body`` as a function run only when the marker is not set, and the
    marker set after it returned (a body that raises leaves no marker: it runs again)."""
    head = _IDEMPOTENT_HEAD.replace("{touch}", _TOUCH if durable else "")
    return head + body + _IDEMPOTENT_TAIL


# Delete a consumer only if it holds no pending entry and has been idle long enough,
# checked and done in one step: XGROUP DELCONSUMER would drop its pending entries.
# ARGV: group, consumer, min idle (ms). Returns 1 if deleted.
DELETE_IDLE_CONSUMER = """
for _, row in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #row, 2 do info[row[i]] = row[i + 1] end
  if info['name'] == ARGV[2] then
    if tonumber(info['pending']) == 0 and tonumber(info['idle']) >= tonumber(ARGV[3]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
      return 1
    end
    return 0
  end
end
return 0
"""

# Release a lock only if it still holds the caller's token (compare-and-delete), so a
# holder whose lock expired cannot delete the next holder's lock.
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# KEYS[1] stream; ARGV: group, consumer, cursor, count. One step of claiming every pending
# entry (min idle 0) to the consumer, ids only: {next cursor, how many}.
CLAIM_ALL_PENDING = """
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'COUNT', ARGV[4],
                     'JUSTID')
return {r[1], #r[2]}
"""


TAKE_TOKEN = """
-- A shared token bucket (middleware/rate_limit.py). KEYS[1] the bucket; ARGV: rate per
-- second, burst. Returns the seconds to wait as text ('0': a token was taken). The
-- server's clock: no process's clock enters it.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'at', string.format('%.17g', math.max(at, now)))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""
