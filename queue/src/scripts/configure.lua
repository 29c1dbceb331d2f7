-- configure: change a queue's settings (`sque-host queue config`). Every script reads them
-- from meta at its next call; the caller has checked that they work together.
-- KEYS[1] meta
-- ARGV[1] the caller's protocol version, then pairs (setting, value) to set.
-- Returns the meta hash, flat, as `open` does.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL.
open_call(KEYS[1], ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return redis.call('HGETALL', KEYS[1])
