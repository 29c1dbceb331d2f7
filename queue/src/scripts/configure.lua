-- configure: change a queue's settings (`sque-host queue config`). Every script reads them
-- from meta at its next call; the caller has checked that they work together. A cap on the
-- jobs in flight (`max_in_flight` above 0) makes the queue require the feature `cap`.
-- KEYS[1] meta
-- ARGV[1] the caller's protocol version, then pairs (setting, value) to set.
-- Returns the meta hash, flat, as `open` does.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL.
local s = open_call(KEYS[1], ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i] == 'max_in_flight' then since_1_1().require_cap_if_set(KEYS[1], s.requires) end
end
return redis.call('HGETALL', KEYS[1])
