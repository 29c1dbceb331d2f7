-- configure: change a queue's settings (`sque-host queue config`). Every script reads them
-- from meta at its next call; the caller has checked that they work together. A cap on the
-- jobs in flight (`max_in_flight` above 0) makes the queue require the feature `cap`, a rate
-- limit (`rate_count` above 0) the feature `rate`.
-- KEYS[1] meta
-- ARGV[1] the caller's protocol version, then pairs (setting, value) to set.
-- Returns the meta hash, flat, as `open` does.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL.
open_call(KEYS[1], ARGV[1])
local limits = false
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i] == 'max_in_flight' or ARGV[i] == 'rate_count' then limits = true end
end
if limits then since_1_1().require_limits_if_set(KEYS[1]) end
return redis.call('HGETALL', KEYS[1])
