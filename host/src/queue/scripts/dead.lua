-- dead: retry or purge dead jobs, one by id or all of them.
-- KEYS[1] dead  KEYS[2] waiting  KEYS[3] jobs  KEYS[4] errors  KEYS[5] requests
-- ARGV[1] "retry" or "purge"  ARGV[2] job id, or "" for every dead job  ARGV[3] wake channel
-- A retried job joins the tail of the queue with its attempts started again; its last error
-- stays readable until it completes. Returns how many jobs were moved or purged.
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
local n = 0
-- The dead list is newest first: walk it backwards so that retried jobs keep their age order.
for i = #entries, 1, -1 do
  local token = entries[i]
  local id, max = string.match(token, '^([^|]+)|%d+|(%d+)$')
  if id and (ARGV[2] == '' or ARGV[2] == id) then
    redis.call('LREM', KEYS[1], 1, token)
    if ARGV[1] == 'retry' then
      redis.call('RPUSH', KEYS[2], id .. '|0|' .. max)
    else
      redis.call('HDEL', KEYS[3], id)
      redis.call('HDEL', KEYS[4], id)
    end
    n = n + 1
  end
end
if ARGV[1] == 'retry' and n > 0 and redis.call('LLEN', KEYS[5]) > 0 then
  redis.call('SPUBLISH', ARGV[3], 'retried')
end
return n
