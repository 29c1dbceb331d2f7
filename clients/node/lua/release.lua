-- release: give a job back to the head of its queue without counting the attempt
-- (a request withdrawn after the job reached it, a host shutting down before it started the job).
-- KEYS[1] meta  KEYS[2] leases  KEYS[3] waiting  KEYS[4] requests
-- ARGV[1] the caller's protocol version  ARGV[2] token "id|attempt|max"
-- Returns 0 for a stale token, 1 when given back.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL; SQUE_INVALID for a token that is not ID|ATTEMPT|MAX
-- (nothing changes: a lease under such a name is the reaper's to bury when it runs out).
local s = open_call(KEYS[1], ARGV[1])
local id, attempt, max = parse_token(ARGV[2])
if not id then
  return redis.error_reply('SQUE_INVALID token ' .. string.format('%q', string.sub(ARGV[2], 1, 80)) ..
    ' is not ID|ATTEMPT|MAX: pass the token the delivery carried')
end
if redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then return 0 end
-- With priorities, to the head of its own level's list.
local list = s.uses and s.uses.priority and since_1_2().list_of(key_base(KEYS[1]), id) or KEYS[3]
redis.call('LPUSH', list, id .. '|' .. (attempt - 1) .. '|' .. max)
if redis.call('LLEN', KEYS[4]) > 0 then
  redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'released')
end
return 1
