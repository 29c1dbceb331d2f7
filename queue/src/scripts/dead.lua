-- dead: retry or purge dead jobs, one by id or all of them.
-- KEYS[1] meta  KEYS[2] dead  KEYS[3] waiting  KEYS[4] jobs  KEYS[5] errors  KEYS[6] requests
-- ARGV[1] the caller's protocol version  ARGV[2] "retry" or "purge"  ARGV[3] job id, or ""
-- for every dead job
-- A retried job joins the tail of the queue with its attempts started again; its last error
-- stays readable until it completes. Returns how many jobs were moved or purged.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL.
open_call(KEYS[1], ARGV[1], {})
local entries = redis.call('LRANGE', KEYS[2], 0, -1)
local n = 0
-- The dead list is newest first: walk it backwards so that retried jobs keep their age order.
for i = #entries, 1, -1 do
  local token = entries[i]
  local id, max = string.match(token, '^([^|]+)|%d+|(%d+)$')
  if id and (ARGV[3] == '' or ARGV[3] == id) then
    redis.call('LREM', KEYS[2], 1, token)
    if ARGV[2] == 'retry' then
      redis.call('RPUSH', KEYS[3], id .. '|0|' .. max)
    else
      redis.call('HDEL', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
    end
    n = n + 1
  end
end
if ARGV[2] == 'retry' and n > 0 and redis.call('LLEN', KEYS[6]) > 0 then
  redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'retried')
end
return n
