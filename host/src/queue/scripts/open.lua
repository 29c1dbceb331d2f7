-- open: create the queue or join it, and tell which protocol it speaks.
-- KEYS[1] meta
-- ARGV[1] protocol version of this library
-- Returns the protocol version the queue was created with.
if redis.call('HSETNX', KEYS[1], 'protocol', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'created_at', (now_ms()))
end
return redis.call('HGET', KEYS[1], 'protocol')
