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
# from a consumer that legitimately reclaimed it, and both would handle it.
# ARGV: group, consumer, justid ('1' resets idle only; '0' also counts a delivery), ids…
CLAIM_IF_OWNER = """
local owned = {}
for i = 4, #ARGV do
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #row > 0 and row[1][2] == ARGV[2] then
    if ARGV[3] == '1' then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i])
    end
    owned[#owned + 1] = ARGV[i]
  end
end
return owned
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

# Prefix of IdempotentScript: the marker is KEYS[1] and its TTL (ms) ARGV[1]; both are
# removed before the user's body runs, so the body sees its own KEYS/ARGV from 1.
IDEMPOTENT_PREFIX = """
local marker = table.remove(KEYS, 1)
local ttl = table.remove(ARGV, 1)
if not redis.call('SET', marker, '1', 'NX', 'PX', ttl) then return false end
"""

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
